// Parley's admin page: a client of the admin API (/api/v1/…) with the bearer token the
// operator types, kept in this tab's sessionStorage only. Everything shown is set with
// textContent (JIDs, resources and addresses are the clients' input: never markup).
'use strict';

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('parley-admin-token') || '';
let view = 'sessions';
let usersAfter = null;

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: Object.assign({ Authorization: 'Bearer ' + token },
      body ? { 'Content-Type': 'application/json' } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json().catch(() => ({}));
  if (r.status === 401) { logout('The token was refused.'); throw new Error('401'); }
  if (!r.ok) throw new Error(json.detail || ('HTTP ' + r.status));
  return json;
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text == null || text === '' ? '-' : String(text);
  row.appendChild(td);
  return td;
}

function action(row, label, run) {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.textContent = label;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await run(); say(label + ': done'); } catch (e) { say(label + ': ' + e.message); }
    refresh();
  });
  td.appendChild(b);
  row.appendChild(td);
}

function say(text) { $('status-line').textContent = text; }

async function loadSessions() {
  const status = $('status').value;
  const q = status ? '?limit=1000&status=' + encodeURIComponent(status) : '?limit=1000';
  const page = await api('GET', '/api/v1/sessions' + q);
  const needle = $('search').value.trim().toLowerCase();
  const type = $('type').value;
  const rows = $('session-rows');
  rows.replaceChildren();
  for (const s of page.sessions) {
    const who = s.jid || ((s.from_host || '?') + '->' + (s.to_host || '?'));
    const hay = [who, s.address, s.ip, s.node].join(' ').toLowerCase();
    if (needle && !hay.includes(needle)) continue;
    if (type && s.type !== type) continue;
    const tr = document.createElement('tr');
    tr.dataset.session = s.session;
    cell(tr, who); cell(tr, s.node); cell(tr, s.type); cell(tr, s.transport);
    cell(tr, s.address || s.ip); cell(tr, s.status); cell(tr, s.created_at);
    if (s.connected) {
      action(tr, 'Kick', () => api('DELETE', '/api/v1/sessions/' + encodeURIComponent(s.session),
        { reason: 'ended by an administrator' }));
    } else {
      cell(tr, '');
    }
    rows.appendChild(tr);
  }
}

async function loadUsers(more) {
  const q = '?limit=100' + (more && usersAfter ? '&after=' + encodeURIComponent(usersAfter) : '');
  const page = await api('GET', '/api/v1/users' + q);
  const rows = $('user-rows');
  if (!more) rows.replaceChildren();
  for (const u of page.users) {
    const tr = document.createElement('tr');
    tr.dataset.jid = u.jid;
    cell(tr, u.jid); cell(tr, u.created); cell(tr, u.password_changed);
    const path = '/api/v1/users/' + encodeURIComponent(u.jid);
    action(tr, 'Sign out', () => api('POST', path + '/signout'));
    action(tr, 'Revoke tokens', () => api('DELETE', path + '/tokens'));
    rows.appendChild(tr);
  }
  usersAfter = page.next;
  $('more-users').hidden = !page.next;
}

async function loadNodes() {
  const page = await api('GET', '/api/v1/nodes');
  const rows = $('node-rows');
  rows.replaceChildren();
  for (const n of page.nodes) {
    const tr = document.createElement('tr');
    cell(tr, n.id); cell(tr, n.addr); cell(tr, n.sessions); cell(tr, n.version);
    cell(tr, n.self ? 'self' : (n.link_up ? 'up' : 'down'));
    rows.appendChild(tr);
  }
}

async function refresh() {
  if (!token) return;
  try {
    if (view === 'sessions') await loadSessions();
    if (view === 'users') await loadUsers(false);
    if (view === 'nodes') await loadNodes();
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message !== '401') say(e.message);
  }
}

function show(name) {
  view = name;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.view === name);
  for (const id of ['sessions', 'users', 'nodes']) $(id).hidden = id !== name;
  refresh();
}

function logout(why) {
  token = '';
  sessionStorage.removeItem('parley-admin-token');
  $('app').hidden = true; $('logout').hidden = true; $('login').hidden = false;
  $('login-error').textContent = why || ''; $('login-error').hidden = !why;
}

async function login(candidate) {
  token = candidate;
  try {
    await api('GET', '/api/v1/nodes');
  } catch (e) {
    return;
  }
  sessionStorage.setItem('parley-admin-token', token);
  $('login').hidden = true; $('app').hidden = false; $('logout').hidden = false;
  $('login-error').hidden = true; $('token').value = '';
  show(view);
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (e) => { e.preventDefault(); login($('token').value); });
  $('logout').addEventListener('click', () => logout());
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => show(b.dataset.view));
  for (const id of ['search', 'status', 'type']) $(id).addEventListener('input', refresh);
  $('more-users').addEventListener('click', () => loadUsers(true));
  if (token) login(token);
  // Live: the current view is read again every two seconds.
  setInterval(refresh, 2000);
});
