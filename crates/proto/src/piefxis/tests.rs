//! XEP-0227 files as Prosody and ejabberd write them, and the refusals.

use super::*;
use parley_xml::Limits;

fn parse(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).expect("well-formed")
}

fn creds(hash: ScramHash) -> ScramCredentials {
    ScramCredentials::derive(hash, "pencil", b"some salt", 4096).unwrap()
}

/// XEP-0227 §4.2 (SCRAM data), §4.3 (roster), §4.6 (vCard), as Prosody 0.12's
/// `mod_storage_xep0227` writes one user's file.
#[test]
fn xep0227_4_a_prosody_user_file_reads_back() {
    let c = creds(ScramHash::Sha1);
    let xml = format!(
        "<?xml version='1.0'?><server-data xmlns='urn:xmpp:pie:0'><host jid='example.com'>\
         <user name='juliet'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
         <iter-count>4096</iter-count><salt>{salt}</salt><server-key>{sk}</server-key>\
         <stored-key>{st}</stored-key></scram-credentials>\
         <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-512'/>\
         <query xmlns='jabber:iq:roster'><item jid='romeo@example.net' name='Romeo' \
         subscription='both'><group>Friends</group><group>Lovers</group></item>\
         <item jid='nurse@example.com' subscription='none' ask='subscribe'/>\
         <item jid='gone@example.com' subscription='remove'/></query>\
         <vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>\
         <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>\
         <presence xmlns='jabber:client' from='nurse@example.com' type='subscribe'/>\
         <presence xmlns='jabber:client' from='nurse@example.com' type='subscribed'/>\
         <offline-messages><message xmlns='jabber:client' from='romeo@example.net/x' \
         to='juliet@example.com'><body>wherefore</body></message></offline-messages>\
         </user></host></server-data>",
        salt = BASE64.encode(&c.salt),
        sk = BASE64.encode(&c.server_key),
        st = BASE64.encode(&c.stored_key),
    );
    let Part::ServerData { hosts, includes } = read(&parse(&xml)).unwrap() else {
        panic!("server-data");
    };
    assert!(includes.is_empty());
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].jid, "example.com");
    let u = &hosts[0].users[0];
    assert_eq!(u.name, "juliet");
    assert_eq!(u.password, None);
    assert_eq!(u.scram, vec![c]);
    assert_eq!(u.skipped_mechanisms, ["SCRAM-SHA-512"]);
    assert_eq!(u.roster.len(), 2, "a 'remove' item is no item");
    assert_eq!(u.roster[0].name.as_deref(), Some("Romeo"));
    assert_eq!(u.roster[0].subscription, "both");
    assert_eq!(u.roster[0].groups, ["Friends", "Lovers"]);
    assert!(u.roster[1].ask && u.roster[1].subscription == "none");
    assert_eq!(
        u.vcard
            .as_ref()
            .and_then(|v| v.get_child("FN", "vcard-temp"))
            .map(Element::text)
            .as_deref(),
        Some("Juliet")
    );
    assert!(u.private[0].is("storage", "storage:bookmarks"));
    assert_eq!(u.offline.len(), 1);
    assert_eq!(u.pending_in.len(), 1, "§4.8: only the subscription request");
}

/// XEP-0227 §5 (XInclude), as ejabberd's `export_piefxis` splits its output: a main file
/// including one file per host, whose users carry plaintext passwords.
#[test]
fn xep0227_5_ejabberd_main_and_host_files_read_back() {
    let main = parse(
        "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
         <xi:include href='20261206-081428_ejabberd_example.xml'/></server-data>",
    );
    assert_eq!(
        read(&main).unwrap(),
        Part::ServerData {
            hosts: vec![],
            includes: vec!["20261206-081428_ejabberd_example.xml".into()],
        }
    );
    let host = parse(
        "<host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' \
         jid='ejabberd.example'><user name='pat' password='pw'/>\
         <xi:include href='quinn.xml'/></host>",
    );
    let Part::Host(h) = read(&host).unwrap() else {
        panic!("host");
    };
    assert_eq!(h.users[0].password.as_deref(), Some("pw"));
    assert_eq!(h.includes, ["quinn.xml"]);
    let user = parse("<user xmlns='urn:xmpp:pie:0' name='quinn' password='pw2'/>");
    assert!(matches!(read(&user).unwrap(), Part::User(u) if u.name == "quinn"));
}

/// Hostile input: an include may only name a file beside the including one.
#[test]
fn xep0227_5_includes_outside_the_directory_are_refused() {
    for href in [
        "../etc/passwd",
        "/etc/passwd",
        "a/b.xml",
        "..",
        "",
        "c:\\x",
        "file:x",
    ] {
        let xml = format!(
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='{href}'/></server-data>"
        );
        assert_eq!(
            read(&parse(&xml)),
            Err(PiefxisError::Include(href.into())),
            "{href}"
        );
    }
}

/// Hostile input: wrong roots, missing names, unusable SCRAM data are errors that say what.
#[test]
fn xep0227_bad_files_are_refused_with_what_is_wrong() {
    assert_eq!(
        read(&parse("<server-data xmlns='jabber:client'/>")),
        Err(PiefxisError::Root("server-data".into()))
    );
    assert_eq!(
        read(&parse("<host xmlns='urn:xmpp:pie:0'/>")),
        Err(PiefxisError::Missing {
            element: "host",
            attr: "jid"
        })
    );
    assert_eq!(
        read(&parse("<user xmlns='urn:xmpp:pie:0' name=''/>")),
        Err(PiefxisError::Missing {
            element: "user",
            attr: "name"
        })
    );
    for body in [
        "<iter-count>0</iter-count><salt>c2FsdA==</salt><server-key>AA==</server-key><stored-key>AA==</stored-key>",
        "<iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>AA==</server-key><stored-key>AA==</stored-key>",
        "<iter-count>4096</iter-count><salt>!!</salt><server-key>AA==</server-key><stored-key>AA==</stored-key>",
        "<iter-count>4096</iter-count>",
    ] {
        let xml = format!(
            "<user xmlns='urn:xmpp:pie:0' name='eve'><scram-credentials \
             xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>{body}</scram-credentials></user>"
        );
        assert!(
            matches!(read(&parse(&xml)), Err(PiefxisError::Scram { ref user, .. }) if user == "eve"),
            "{body}"
        );
    }
}

/// What Parley exports reads back unchanged (both hashes, roster, vCard, private, offline).
#[test]
fn xep0227_what_parley_writes_reads_back() {
    let user = User {
        name: "juliet".into(),
        scram: vec![creds(ScramHash::Sha1), creds(ScramHash::Sha256)],
        roster: vec![RosterEntry {
            jid: "romeo@example.net".into(),
            name: Some("R & R".into()),
            subscription: "to".into(),
            ask: true,
            groups: vec!["<Friends>".into()],
        }],
        vcard: Some(parse("<vCard xmlns='vcard-temp'><FN>J</FN></vCard>")),
        private: vec![parse("<storage xmlns='storage:bookmarks'/>")],
        offline: vec![parse(
            "<message xmlns='jabber:client' to='juliet@example.com'><body>hi</body></message>",
        )],
        pending_in: vec![parse(
            "<presence xmlns='jabber:client' from='nurse@example.com' type='subscribe'/>",
        )],
        ..User::default()
    };
    let el = user_element(&user);
    assert_eq!(el.attr("password"), None, "never a plaintext password");
    let bytes = el.to_bytes_in(None);
    let back = Element::parse(&bytes, &Limits::default()).unwrap();
    assert_eq!(read(&back).unwrap(), Part::User(Box::new(user)));
}

/// ejabberd 23.01 writes its SCRAM data base64-encoded twice (and reads it so): read as it
/// means it, and written so for it on request; the two read back the same.
#[test]
fn xep0227_4_2_ejabberd_23_scram_data_reads_and_writes_back() {
    let c = creds(ScramHash::Sha1);
    let twice = |b: &[u8]| BASE64.encode(BASE64.encode(b));
    let xml = format!(
        "<user xmlns='urn:xmpp:pie:0' name='pat'><scram-credentials \
         xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count>\
         <salt>{}</salt><server-key>{}</server-key><stored-key>{}</stored-key>\
         </scram-credentials></user>",
        twice(&c.salt),
        twice(&c.server_key),
        twice(&c.stored_key)
    );
    let Part::User(u) = read(&parse(&xml)).unwrap() else {
        panic!("user");
    };
    assert_eq!(u.scram, vec![c.clone()]);
    let written = user_element_encoded(&u, ScramEncoding::Base64Twice);
    assert!(written.to_string().contains(&twice(&c.stored_key)));
    assert_eq!(read(&written).unwrap(), Part::User(u));
}
