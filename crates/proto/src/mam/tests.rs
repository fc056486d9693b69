//! Unit tests of the archive's pure rules, each naming its XEP section.

use parley_xml::{Element, Limits};

use super::*;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn xep0313_5_1_1_what_a_user_archive_keeps() {
    let keep = [
        "<message xmlns='jabber:client' type='chat'><body>hi</body></message>",
        "<message xmlns='jabber:client'><body>normal</body></message>",
        "<message xmlns='jabber:client' type='chat'><store xmlns='urn:xmpp:hints'/></message>",
        "<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
    ];
    for xml in keep {
        assert!(archivable(&el(xml)), "{xml}");
    }
    let skip = [
        // Chat states and receipts are state, not content.
        "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message xmlns='jabber:client' type='chat'><body>  </body></message>",
        "<message xmlns='jabber:client' type='groupchat'><body>room</body></message>",
        "<message xmlns='jabber:client' type='error'><body>x</body></message>",
        "<message xmlns='jabber:client' type='headline'><body>news</body></message>",
        // XEP-0334 §4: the sender's hints win over the body.
        "<message xmlns='jabber:client' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
        "<message xmlns='jabber:client' type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
        "<presence xmlns='jabber:client'/>",
    ];
    for xml in skip {
        assert!(!archivable(&el(xml)), "{xml}");
    }
}

#[test]
fn xep0359_3_ids_our_server_stamps_are_removed_others_kept() {
    let mut msg = el("<message xmlns='jabber:client'>\
        <stanza-id xmlns='urn:xmpp:sid:0' by='remote.example' id='r1'/>\
        <body>x</body>\
        <stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/>\
        <stanza-id xmlns='urn:xmpp:sid:0' id='no-by'/>\
        <origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>");
    let ours = |by: &str| by.ends_with("@example.org") || by == "example.org";
    assert_eq!(strip_stanza_ids(&mut msg, ours), 2);
    let ids: Vec<_> = msg
        .children()
        .filter(|c| c.is("stanza-id", SID))
        .map(|c| c.attr("id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["r1"]);
    assert!(
        msg.has_child("origin-id", SID),
        "origin-id is the client's, kept"
    );
    assert_eq!(msg.get_child("body", "jabber:client").unwrap().text(), "x");
    assert_eq!(strip_stanza_ids(&mut msg, ours), 0);
}

fn query(xml: &str) -> Result<Query, BadQuery> {
    parse_query(&el(xml), 50, 100)
}

#[test]
fn xep0313_4_1_form_filters_and_xep0059_paging() {
    let q = query(
        "<query xmlns='urn:xmpp:mam:2' queryid='f27'>\
          <x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
            <field var='with'><value>juliet@capulet.lit/balcony</value></field>\
            <field var='start'><value>2010-06-07T00:00:00Z</value></field>\
            <field var='end'><value>2010-07-07T13:23:54Z</value></field>\
            <field var='after-id'><value>a</value></field>\
            <field var='before-id'><value>b</value></field>\
            <field var='ids'><value>x</value><value>y</value></field>\
          </x>\
          <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>09af3</before></set>\
          <flip-page/>\
        </query>",
    )
    .unwrap();
    assert_eq!(q.query_id.as_deref(), Some("f27"));
    assert_eq!(
        q.with,
        Some(With {
            bare: "juliet@capulet.lit".into(),
            resource: Some("balcony".into())
        })
    );
    assert_eq!(q.start, Some(1_275_868_800_000));
    assert_eq!(q.end, Some(1_278_509_034_000));
    assert_eq!(
        (q.after_id.as_deref(), q.before_id.as_deref()),
        (Some("a"), Some("b"))
    );
    assert_eq!(q.ids, ["x", "y"]);
    assert_eq!(q.max, 10);
    assert_eq!(q.page, Page::Before("09af3".into()));
    assert!(q.flip);
}

#[test]
fn xep0059_cursors_and_bounds() {
    let page = |set: &str| {
        query(&format!(
            "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>{set}</set></query>"
        ))
    };
    assert_eq!(page("").unwrap().page, Page::First);
    assert_eq!(page("").unwrap().max, 50, "no <max/>: the default page");
    assert_eq!(page("<before/>").unwrap().page, Page::Last);
    assert_eq!(
        page("<after>z</after>").unwrap().page,
        Page::After("z".into())
    );
    assert_eq!(page("<index>7</index>").unwrap().page, Page::Index(7));
    // §2.1: the responder may return fewer than asked.
    assert_eq!(page("<max>100000</max>").unwrap().max, 100);
    assert_eq!(page("<max>0</max>").unwrap().max, 0);
    for bad in [
        "<max>-1</max>",
        "<max>many</max>",
        "<after>a</after><before>b</before>",
        "<index>x</index>",
    ] {
        assert!(page(bad).is_err(), "{bad}");
    }
}

#[test]
fn xep0313_4_1_bad_forms_are_bad_requests() {
    let form = |fields: &str| {
        query(&format!(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>{fields}</x></query>"
        ))
    };
    for fields in [
        "<field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field>",
        "<field var='with'><value>@@</value></field>",
        "<field var='start'><value>yesterday</value></field>",
        "<field var='withtext'><value>hello</value></field>",
        "<field var='with'><value>a@b</value><value>c@d</value></field>",
        "<field var='start'><value>2020-01-02T00:00:00Z</value></field><field var='end'><value>2020-01-01T00:00:00Z</value></field>",
    ] {
        let err = form(fields).unwrap_err();
        assert!(!err.0.is_empty(), "{fields}");
    }
    assert!(
        query("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'/></query>")
            .is_err()
    );
    // Empty values are no filter.
    let q = form("<field var='with'><value/></field>").unwrap();
    assert_eq!(q.with, None);
}

#[test]
fn xep0313_4_1_5_the_form_advertises_every_field_parsed() {
    let form = query_form();
    let x = form.get_child("x", DATA).unwrap();
    let vars: Vec<_> = x
        .children()
        .map(|f| f.attr("var").unwrap().to_owned())
        .collect();
    assert_eq!(
        vars,
        [
            "FORM_TYPE",
            "with",
            "start",
            "end",
            "after-id",
            "before-id",
            "ids"
        ]
    );
    // Every advertised field is accepted back.
    let mut submit = Element::new("x", DATA).with_attr("type", "submit");
    for var in &vars[1..] {
        submit.push_child(Element::new("field", DATA).with_attr("var", var.as_str()));
    }
    let q = Element::new("query", NS).with_child(submit);
    parse_query(&q, 10, 10).unwrap();
}

#[test]
fn xep0313_4_2_results_and_fin() {
    let stanza =
        el("<message xmlns='jabber:client' to='a@x' from='b@x/r'><body>hi</body></message>");
    let msg = result_message(
        "a@x",
        "a@x/phone",
        Some("q1"),
        Archived {
            id: "28482-98726-73623".into(),
            stamp_ms: 1_275_868_800_000,
            stanza: stanza.clone(),
        },
    );
    assert_eq!(msg.attr("from"), Some("a@x"));
    let result = msg.get_child("result", NS).unwrap();
    assert_eq!(result.attr("queryid"), Some("q1"));
    assert_eq!(result.attr("id"), Some("28482-98726-73623"));
    let fwd = result.get_child("forwarded", ns::FORWARD).unwrap();
    assert_eq!(
        fwd.get_child("delay", ns::DELAY).unwrap().attr("stamp"),
        Some("2010-06-07T00:00:00.000Z")
    );
    assert_eq!(fwd.get_child("message", ns::CLIENT), Some(&stanza));

    let done = fin(&Fin {
        complete: true,
        first: Some("a".into()),
        last: Some("b".into()),
        first_index: Some(0),
        count: Some(2),
    });
    assert_eq!(done.attr("complete"), Some("true"));
    let set = done.get_child("set", RSM).unwrap();
    assert_eq!(
        set.get_child("first", RSM).unwrap().attr("index"),
        Some("0")
    );
    assert_eq!(set.get_child("count", RSM).unwrap().text(), "2");
    // An empty page has no first/last (XEP-0059 §2.5).
    let empty = fin(&Fin {
        complete: false,
        first: None,
        last: None,
        first_index: None,
        count: Some(0),
    });
    assert_eq!(empty.attr("complete"), None);
    assert!(empty
        .get_child("set", RSM)
        .unwrap()
        .get_child("first", RSM)
        .is_none());
}

#[test]
fn xep0441_preferences_decide_and_round_trip() {
    let prefs = Prefs::parse(
        &el("<prefs xmlns='urn:xmpp:mam:2' default='roster'>\
            <always><jid>romeo@montague.lit</jid></always>\
            <never><jid>montague@montague.lit</jid><jid>romeo@montague.lit/spam</jid></never>\
            </prefs>"),
        100,
    )
    .unwrap();
    let w = |j: &str| With::parse(j).unwrap();
    assert!(prefs.archives(&w("romeo@montague.lit/phone"), || false));
    // §2: never wins, and a full JID in a list matches only that resource.
    assert!(!prefs.archives(&w("romeo@montague.lit/spam"), || true));
    assert!(!prefs.archives(&w("montague@montague.lit"), || true));
    assert!(prefs.archives(&w("friend@x"), || true));
    assert!(!prefs.archives(&w("stranger@x"), || false));
    assert!(Prefs::with_default(Default::Always).archives(&w("a@b"), || false));
    assert!(!Prefs::with_default(Default::Never).archives(&w("a@b"), || true));

    let back = Prefs::parse(&prefs.to_element(), 100).unwrap();
    assert_eq!(back, prefs);
    assert_eq!(Prefs::from_lines(&Prefs::lines(&prefs.never)), prefs.never);

    assert!(Prefs::parse(
        &el("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>"),
        10
    )
    .is_err());
    assert!(Prefs::parse(
        &el("<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>@bad</jid></always></prefs>"),
        10
    )
    .is_err());
    assert!(Prefs::parse(
        &el("<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>a@b</jid><jid>c@d</jid></always></prefs>"),
        1
    )
    .is_err());
}

/// XEP-0313 §5.2: ids are unique and unpredictable; ours also sort by time (ASCII order), so
/// the store's id index grows at one end.
#[test]
fn xep0313_5_2_ids_are_unpredictable_and_sort_by_time() {
    let ids: Vec<String> = (0..1000).map(|_| new_id_at(1_800_000_000_000)).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "one millisecond, a thousand distinct ids"
    );
    assert!(ids.iter().all(|id| id.len() == 20 && id.is_ascii()));
    let (a, b, c) = (
        new_id_at(999),
        new_id_at(1000),
        new_id_at(1_800_000_000_000),
    );
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(&new_id_at(-5)[..8], "00000000");
    assert_eq!(&new_id_at(62)[..8], "00000010");
}

/// XEP-0441 §2 lists compare as given: a bare JID matches it bare, a full JID only with that
/// exact resource; compared in place, without a prefix or suffix counting as a match.
#[test]
fn xep0441_a_listed_jid_matches_the_address_exactly() {
    let full = With::parse("romeo@montague.lit/spam").unwrap();
    assert!(full.is("romeo@montague.lit"));
    assert!(full.is("romeo@montague.lit/spam"));
    for other in [
        "romeo@montague.lit/spa",
        "romeo@montague.lit/spamx",
        "romeo@montague.lit/spam/x",
        "romeo@montague.litx/spam",
        "romeo@montague.lit//spam",
        "romeo@montague.lit.spam",
        "montague.lit/spam",
        "",
    ] {
        assert!(!full.is(other), "{other}");
    }
    assert_eq!(full.full(), "romeo@montague.lit/spam");
    let bare = With::parse("romeo@montague.lit").unwrap();
    assert!(bare.is("romeo@montague.lit"));
    assert!(!bare.is("romeo@montague.lit/spam"));
    assert_eq!(bare.full(), "romeo@montague.lit");
}
