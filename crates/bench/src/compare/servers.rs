//! The servers of `parley-bench compare`: the configuration each one runs with,
//! provisioning accounts and rosters, starting one pinned to CPU 0 and stopping it. A
//! server is started once per phase on the same data (see [`super::Phase`]).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ejabberd, other, prosody, wait_port, web, CompareOpts, Server, Sizes};
use crate::{BenchError, Target};

/// A server started for one phase.
pub(super) struct Started {
    pub pid: u32,
    child: Option<Child>,
    stop: Box<dyn FnOnce()>,
}

impl Started {
    /// Stops the server and waits until it has exited, so that the next start finds its
    /// port and data free; one that ignores SIGTERM for 30 s is killed.
    pub fn stop(self) {
        let Started { pid, child, stop } = self;
        stop();
        let Some(mut child) = child else { return };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("   pid {pid} still running 30 s after SIGTERM: killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Writes a self-signed ECDSA P-256 certificate for `localhost` (what Parley generates for
/// itself when it has none), for Prosody and ejabberd to offer STARTTLS with.
pub(crate) fn self_signed_cert(key: &Path, crt: &Path) -> std::io::Result<()> {
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(crt)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// The binary and scratch directory of Parley or its baseline build.
fn parley_build(server: Server, opts: &CompareOpts) -> Result<(&Path, PathBuf), BenchError> {
    match server {
        Server::ParleyBaseline => {
            let bin = opts
                .baseline_bin
                .as_deref()
                .ok_or_else(|| other("--servers parley-baseline needs --baseline-bin"))?;
            Ok((bin, opts.workdir.join("parley-baseline")))
        }
        Server::ParleyNoArchive => Ok((&opts.parley_bin, opts.workdir.join("parley-noarchive"))),
        _ => Ok((&opts.parley_bin, opts.workdir.join("parley"))),
    }
}

/// Parley's config: plain TCP allowed (STARTTLS offered with the certificate Parley
/// generates), the limits raised above anything the generator does, warnings only in the
/// log, SQLite in `dir`; the archive off for [`Server::ParleyNoArchive`].
pub(super) fn parley_config(server: Server, dir: &Path) -> String {
    format!(
        "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{dir}\"\n\n[c2s]\nlisten = [\"127.0.0.1:{port}\"]\ndirect_tls = []\nrequire_encryption = false\n\n[sasl]\nscram_iterations = 4096\n\n[limits]\nmax_connections_per_ip = 10000000\nconnection_rate_per_ip = 10000000\nconnection_burst_per_ip = 10000000\nmax_sessions = 10000000\nread_bytes_per_s = 1073741824\nread_burst_bytes = 1073741824\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\nbosh_sessions_per_ip_burst = 10000000\nbosh_sessions_per_ip_per_minute = 10000000\n\n[log]\nlevel = \"warn\"\n{archive}",
        dir = dir.display(),
        port = server.port(),
        http = web::http_port(server).unwrap_or(0),
        archive = if server == Server::ParleyNoArchive {
            "\n[mam]\nenabled = false\n"
        } else {
            ""
        },
    )
}

fn prosody_ports(server: Server) -> prosody::Ports {
    prosody::Ports {
        c2s: server.port(),
        s2s: server.port() + 47,
        http: web::http_port(server).unwrap_or(server.port() + 58),
    }
}

/// Prosody's config for `server` (Debian's, see [`prosody::debian_config`]).
pub(super) fn prosody_config(server: Server, dir: &Path) -> String {
    let extra: &[&str] = if server == Server::ProsodyMam {
        &["mam"]
    } else {
        &[]
    };
    prosody::debian_config(dir, prosody_ports(server), extra)
}

pub(super) fn ejabberd(opts: &CompareOpts) -> ejabberd::Ejabberd {
    ejabberd::Ejabberd {
        dir: opts.workdir.join("ejabberd"),
        c2s_port: Server::Ejabberd.port(),
        api_port: 27280,
        node: "parleybench@localhost".into(),
    }
}

/// The config file a server runs with, by name and text, for the report.
pub(super) fn config_file(server: Server, opts: &CompareOpts) -> (String, String) {
    match server {
        Server::Parley | Server::ParleyBaseline | Server::ParleyNoArchive => {
            let dir = parley_build(server, opts).map_or_else(|_| opts.workdir.clone(), |b| b.1);
            ("parley.toml".into(), parley_config(server, &dir))
        }
        Server::Prosody | Server::ProsodyMam => {
            let dir = opts.workdir.join(server.dir_name());
            ("prosody.cfg.lua".into(), prosody_config(server, &dir))
        }
        Server::Ejabberd => ("ejabberd.yml".into(), ejabberd(opts).config()),
    }
}

fn usernames(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("user{i}")).collect()
}

/// Fresh data for `server`: accounts user1…userN (password `pw`) and the presence
/// scenario's rosters, its config and (Prosody) certificate.
pub(super) fn provision(server: Server, opts: &CompareOpts, s: &Sizes) -> Result<(), BenchError> {
    match server {
        Server::ParleyBaseline => {
            // The rosters are written through this build's store, which migrates the database
            // to this build's schema, and a baseline binary refuses a schema newer than its
            // own. So the accounts and rosters are made in a scratch directory, exported to
            // XEP-0227 by this build and imported by the baseline into its own database.
            let (bin, dir) = parley_build(server, opts)?;
            let staging = opts.workdir.join("parley-baseline-staging");
            provision_parley(&opts.parley_bin, server, &staging, opts, s)?;
            let file = opts.workdir.join("parley-baseline.xml");
            parley_cli(&opts.parley_bin, &staging, &["user", "export"], Some(&file))?;
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("parley dir", e))?;
            std::fs::write(dir.join("parley.toml"), parley_config(server, &dir))
                .map_err(|e| BenchError::io("config", e))?;
            let piefxis = format!("--piefxis={}", file.display());
            parley_cli(bin, &dir, &["user", "import", &piefxis], None)?;
            let _ = std::fs::remove_file(&file);
            Ok(())
        }
        Server::Parley | Server::ParleyNoArchive => {
            let (bin, dir) = parley_build(server, opts)?;
            provision_parley(bin, server, &dir, opts, s)
        }
        Server::Prosody | Server::ProsodyMam => {
            let dir = opts.workdir.join(server.dir_name());
            let _ = std::fs::remove_dir_all(&dir);
            let data = dir.join("data");
            prosody::provision_accounts(&data, "localhost", &usernames(opts.users), "pw", 4096)
                .map_err(|e| BenchError::io("prosody accounts", e))?;
            for (first, n) in s.presence {
                prosody::presence_rosters(&data, "localhost", "user", first, n)
                    .map_err(|e| BenchError::io("prosody roster", e))?;
            }
            std::fs::write(dir.join("prosody.cfg.lua"), prosody_config(server, &dir))
                .map_err(|e| BenchError::io("prosody config", e))?;
            let certs = dir.join("certs");
            self_signed_cert(&certs.join("localhost.key"), &certs.join("localhost.crt"))
                .map_err(|e| BenchError::io("prosody certificate", e))
        }
        Server::Ejabberd => {
            if !ejabberd::installed() {
                return Err(other(
                    "ejabberd is not installed (apt-get install ejabberd)",
                ));
            }
            let e = ejabberd(opts);
            e.stop();
            e.start()
                .map_err(|err| BenchError::io("ejabberd start", err))?;
            let result = (|| {
                e.register(&usernames(opts.users), "pw", 8)?;
                for (first, n) in s.presence {
                    let contacts: Vec<String> = (first + 1..=first + n)
                        .map(|i| format!("user{i}"))
                        .collect();
                    e.befriend(&format!("user{first}"), &contacts)?;
                }
                Ok::<(), std::io::Error>(())
            })();
            e.stop();
            result.map_err(|err| BenchError::io("ejabberd provisioning", err))
        }
    }
}

/// Parley `server`'s accounts (`parley user import` by `bin`) and presence rosters (through
/// this build's store) in a fresh `dir`, with its config.
fn provision_parley(
    bin: &Path,
    server: Server,
    dir: &Path,
    opts: &CompareOpts,
    s: &Sizes,
) -> Result<(), BenchError> {
    let config_path = dir.join("parley.toml");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io("parley dir", e))?;
    std::fs::write(&config_path, parley_config(server, dir))
        .map_err(|e| BenchError::io("config", e))?;
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config_path)
        .args(["user", "import"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::io("parley user import", e))?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        let mut lines = String::new();
        for i in 1..=opts.users {
            let _ = writeln!(lines, "user{i}@localhost pw");
        }
        stdin
            .write_all(lines.as_bytes())
            .map_err(|e| BenchError::io("import input", e))?;
    }
    let status = child.wait().map_err(|e| BenchError::io("import", e))?;
    if !status.success() {
        return Err(other(format!("parley user import exited with {status}")));
    }
    let url = format!("sqlite://{}/parley.db", dir.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("runtime", e))?;
    rt.block_on(async {
        let storage = crate::provision::open(&url).await?;
        for (first, n) in s.presence {
            let mut t = Target::new(vec![SocketAddr::from(([127, 0, 0, 1], 1))]);
            t.first_user = first;
            crate::provision::presence_rosters(storage.as_ref(), &t, n).await?;
        }
        Ok::<(), BenchError>(())
    })
}

/// Runs `bin --config DIR/parley.toml ARGS [FILE]`, which must succeed.
fn parley_cli(
    bin: &Path,
    dir: &Path,
    args: &[&str],
    file: Option<&Path>,
) -> Result<(), BenchError> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(dir.join("parley.toml")).args(args);
    if let Some(file) = file {
        cmd.arg(file);
    }
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::io("parley cli", e))?;
    if !status.success() {
        return Err(other(format!(
            "parley {} exited with {status}",
            args.join(" ")
        )));
    }
    Ok(())
}

/// Starts the provisioned `server` on CPU 0 and waits for its c2s port.
pub(super) fn start(server: Server, opts: &CompareOpts) -> Result<Started, BenchError> {
    match server {
        Server::Parley | Server::ParleyBaseline | Server::ParleyNoArchive => {
            let (bin, dir) = parley_build(server, opts)?;
            let cmd = format!(
                "ulimit -n 20000; exec taskset -c 0 {} --config {} serve",
                bin.display(),
                dir.join("parley.toml").display()
            );
            let child = Command::new("sh")
                .args(["-c", &cmd])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("parley serve", e))?;
            let pid = child.id();
            wait_port(server.port(), Duration::from_secs(20))?;
            Ok(Started {
                pid,
                child: Some(child),
                stop: Box::new(move || {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }),
            })
        }
        Server::Prosody | Server::ProsodyMam => {
            // Not through run-prosody.sh: its `runuser` goes through PAM, which resets the
            // open-file limit to 1024 and caps Prosody near 1000 sessions. `setpriv` keeps the
            // limit. `exec` all the way, so the child's pid is Prosody's; `-F` (foreground) as
            // Debian's prosody.service runs it.
            let dir = opts.workdir.join(server.dir_name());
            let chown = Command::new("chown")
                .args(["-R", "prosody:prosody"])
                .arg(&dir)
                .status()
                .map_err(|e| BenchError::io("chown prosody dir", e))?;
            if !chown.success() {
                return Err(other("chown of the Prosody directory failed"));
            }
            let cmd = format!(
                "ulimit -n 20000; exec taskset -c 0 setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config {}",
                dir.join("prosody.cfg.lua").display()
            );
            let child = Command::new("sh")
                .args(["-c", &cmd])
                .env("PROSODY_DIR", &dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::io("prosody", e))?;
            let pid = child.id();
            wait_port(server.port(), Duration::from_secs(30))?;
            Ok(Started {
                pid,
                child: Some(child),
                stop: Box::new(move || {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                }),
            })
        }
        Server::Ejabberd => {
            let e = ejabberd(opts);
            e.start_pinned()
                .map_err(|err| BenchError::io("ejabberd start", err))?;
            let pid = e
                .pid()
                .ok_or_else(|| other("ejabberd started but its beam.smp pid was not found"))?;
            Ok(Started {
                pid,
                child: None,
                stop: Box::new(move || e.stop()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parley_config_turns_the_archive_off_only_for_its_variant() {
        let dir = Path::new("/tmp/pc");
        let on = parley_config(Server::Parley, dir);
        let off = parley_config(Server::ParleyNoArchive, dir);
        assert!(on.contains("listen = [\"127.0.0.1:15222\"]"));
        assert!(!on.contains("[mam]"));
        assert!(off.contains("[mam]\nenabled = false"));
        assert!(on.contains("require_encryption = false"));
    }

    #[test]
    fn prosody_variants_share_the_debian_base() {
        let dir = Path::new("/tmp/pp");
        let plain = prosody_config(Server::Prosody, dir);
        let mam = prosody_config(Server::ProsodyMam, dir);
        assert!(plain.contains("c2s_ports = { 25222 }"));
        assert!(mam.contains("c2s_ports = { 26222 }"));
        assert!(!prosody::modules_enabled(&plain)
            .unwrap()
            .contains(&"mam".to_owned()));
        assert!(prosody::modules_enabled(&mam)
            .unwrap()
            .contains(&"mam".to_owned()));
    }
}
