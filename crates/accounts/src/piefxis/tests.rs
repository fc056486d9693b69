//! XEP-0227 import and export against a real (in-memory SQLite) store and real files.

use super::*;

const BOUNDS: ImportBounds = ImportBounds {
    scram_iterations: 4096,
    offline_max: 2,
    offline_max_bytes: 100_000,
    private_max_namespaces: 10,
    roster_max_items: 100,
    pending_max: 10,
};

async fn store() -> std::sync::Arc<dyn Storage> {
    parley_storage::open("sqlite::memory:").await.unwrap()
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// ejabberd's layout (XEP-0227 §5): a main file including a host file; plaintext passwords
/// get keys derived; roster, vCard, private XML and offline messages land; an existing
/// account, another host, a bad name and a user without credentials are each left out and
/// said so; then the export reads back with the same roster and credentials that work.
#[tokio::test]
async fn xep0227_an_import_stores_what_it_can_and_says_what_it_left_out() {
    let d = dir();
    std::fs::write(
        d.path().join("main.xml"),
        "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0' \
         xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='host.xml'/>\
         <host jid='other.example'><user name='x' password='y'/></host></server-data>",
    )
    .unwrap();
    std::fs::write(
        d.path().join("host.xml"),
        "<host xmlns='urn:xmpp:pie:0' jid='Example.COM'>\
         <user name='Pat' password='pw'><query xmlns='jabber:iq:roster'>\
         <item jid='quinn@example.com' subscription='both' name='Q'><group>G</group></item>\
         </query><vCard xmlns='vcard-temp'><FN>Pat</FN></vCard>\
         <query xmlns='jabber:iq:private'><notes xmlns='storage:rosternotes'/></query>\
         <presence from='romeo@example.net/x' type='subscribe'/>\
         <offline-messages><message xmlns='jabber:client' to='pat@example.com' from='quinn@example.com'>\
         <body>1</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-02T03:04:05Z'/></message>\
         <message xmlns='jabber:client'><body>2</body></message>\
         <message xmlns='jabber:client'><body>3</body></message></offline-messages></user>\
         <user name='old' password='pw'/><user name='bad@name' password='pw'/>\
         <user name='nocreds'/></host>",
    )
    .unwrap();
    let data = read_path(&d.path().join("main.xml"), ReadLimits::default()).unwrap();
    let s = store().await;
    s.create_account("old", "example.com", &[]).await.unwrap();
    let mut errors = Vec::new();
    let report = import(&*s, &["example.com"], data, BOUNDS, &mut errors)
        .await
        .unwrap();
    let errors = String::from_utf8(errors).unwrap();
    assert_eq!(report.created, 1, "{errors}");
    assert_eq!(report.skipped_existing, 1);
    assert_eq!(report.skipped_other_hosts, 1);
    assert_eq!(report.invalid, 2, "{errors}");
    assert_eq!((report.roster_items, report.private), (1, 2));
    assert_eq!((report.offline, report.offline_refused), (2, 1));
    assert_eq!(
        report.pending_in, 1,
        "a request in the file's namespace, as Prosody writes it"
    );
    let pending = s.pending_in("pat", "example.com").await.unwrap();
    assert_eq!(pending[0].0, "romeo@example.net");
    assert!(
        errors.contains("other.example") && errors.contains("nocreds"),
        "{errors}"
    );
    assert!(!errors.contains("pw"), "never a password: {errors}");

    // The derived keys are the password's.
    let c = s
        .credentials("pat", "example.com", ScramHash::Sha256)
        .await
        .unwrap()
        .unwrap();
    let again = parley_proto::sasl::ScramCredentials::derive(
        ScramHash::Sha256,
        "pw",
        &c.salt,
        c.iterations,
    )
    .unwrap();
    assert_eq!(c, again);
    let offline = s.offline_peek("pat", "example.com").await.unwrap();
    assert_eq!(
        offline[0].stamp_ms, 1_577_934_245_000,
        "the stamp of its <delay/>"
    );
    assert!(
        !offline[0].stanza.contains("delay"),
        "{}",
        offline[0].stanza
    );

    // Export: what was imported comes out, with SCRAM data, never a password.
    let mut out = Vec::new();
    let exported = export(&*s, Some("example.com"), ScramEncoding::Standard, &mut out)
        .await
        .unwrap();
    assert_eq!(exported.accounts, 2);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("password="), "{text}");
    let back = Element::parse(text.as_bytes(), &Limits::default()).unwrap();
    let Part::ServerData { hosts, .. } = piefxis::read(&back).unwrap() else {
        panic!("{text}");
    };
    let pat = hosts[0].users.iter().find(|u| u.name == "pat").unwrap();
    assert_eq!(pat.scram.len(), 2);
    assert_eq!(pat.roster[0].jid, "quinn@example.com");
    assert_eq!(pat.roster[0].groups, ["G"]);
    assert_eq!(
        pat.vcard
            .as_ref()
            .and_then(|v| v.get_child("FN", "vcard-temp"))
            .map(Element::text)
            .as_deref(),
        Some("Pat")
    );
    assert!(pat.private.iter().any(|p| p.ns() == "storage:rosternotes"));
    assert_eq!(pat.pending_in[0].attr("from"), Some("romeo@example.net/x"));
    // §4.4: offline messages, each with the <delay/> of its arrival (and still stored).
    assert_eq!(pat.offline.len(), offline.len());
    assert_eq!(
        pat.offline[0]
            .get_child("delay", parley_proto::ns::DELAY)
            .and_then(|d| d.attr("stamp")),
        Some("2020-01-02T03:04:05.000Z"),
        "{text}"
    );
    assert_eq!(s.offline_count("pat", "example.com").await.unwrap(), 2);

    // And an export imports into another store as it was ("old" was made without
    // credentials, so it has nothing to log in with and is left out).
    let other = store().await;
    let f = d.path().join("export.xml");
    std::fs::write(&f, &text).unwrap();
    let data = read_path(&f, ReadLimits::default()).unwrap();
    let report = import(&*other, &["example.com"], data, BOUNDS, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!((report.created, report.invalid), (1, 1));
    assert_eq!(report.roster_items, 1);
    assert_eq!(report.offline, 2);
    assert_eq!(
        other.offline_take("pat", "example.com").await.unwrap(),
        offline,
        "the same messages with the same arrival stamps"
    );
    assert_eq!(
        other
            .credentials("pat", "example.com", ScramHash::Sha1)
            .await
            .unwrap(),
        s.credentials("pat", "example.com", ScramHash::Sha1)
            .await
            .unwrap()
    );
}

/// Prosody's migrator writes one `<server-data/>` file per user into a directory.
#[tokio::test]
async fn xep0227_a_directory_of_user_files_imports_each() {
    let d = dir();
    for name in ["a", "b"] {
        std::fs::write(
            d.path().join(format!("{name}@example.com.xml")),
            format!(
                "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.com'>\
                 <user name='{name}' password='pw'/></host></server-data>"
            ),
        )
        .unwrap();
    }
    std::fs::write(d.path().join("notes.txt"), "not xml").unwrap();
    let data = read_path(d.path(), ReadLimits::default()).unwrap();
    assert_eq!(data["example.com"].len(), 2);
}

/// Hostile files: over the size bound, too many files, an include loop, a stray
/// `<user/>` file, an include leaving the directory — each an error naming the file.
#[tokio::test]
async fn xep0227_hostile_files_are_refused_naming_the_file() {
    let d = dir();
    let f = d.path().join("big.xml");
    std::fs::write(
        &f,
        format!(
            "<server-data xmlns='urn:xmpp:pie:0'>{}</server-data>",
            " ".repeat(2000)
        ),
    )
    .unwrap();
    let small = ReadLimits {
        max_file_bytes: 1000,
        max_files: 10,
    };
    let e = read_path(&f, small).unwrap_err().to_string();
    assert!(
        e.contains("big.xml") && e.contains("--max-file-bytes"),
        "{e}"
    );

    let inc = |href: &str| {
        format!(
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='{href}'/></server-data>"
        )
    };
    // Two files including each other: each read once, then done.
    std::fs::write(d.path().join("p.xml"), inc("q.xml")).unwrap();
    std::fs::write(d.path().join("q.xml"), inc("p.xml")).unwrap();
    assert!(read_path(&d.path().join("p.xml"), small)
        .unwrap()
        .is_empty());
    // A chain longer than the file bound.
    for i in 0..12 {
        std::fs::write(
            d.path().join(format!("c{i}.xml")),
            inc(&format!("c{}.xml", i + 1)),
        )
        .unwrap();
    }
    let e = read_path(&d.path().join("c0.xml"), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-files"), "{e}");

    std::fs::write(
        d.path().join("u.xml"),
        "<user xmlns='urn:xmpp:pie:0' name='u'/>",
    )
    .unwrap();
    let e = read_path(&d.path().join("u.xml"), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("u.xml"), "{e}");

    std::fs::write(d.path().join("out.xml"), inc("../etc/passwd")).unwrap();
    let e = read_path(&d.path().join("out.xml"), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out.xml") && e.contains("../etc/passwd"), "{e}");

    std::fs::write(
        d.path().join("broken.xml"),
        "<server-data xmlns='urn:xmpp:pie:0'>",
    )
    .unwrap();
    let e = read_path(&d.path().join("broken.xml"), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.xml"), "{e}");
}
