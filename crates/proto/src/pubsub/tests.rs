//! Unit tests of the pubsub requests and configuration, each naming its XEP section.

use parley_xml::{Element, Limits};

use super::*;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn xep0060_7_1_publish_with_xep0223_options() {
    let iq = el("<iq xmlns='jabber:client' type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
        <publish node='urn:xmpp:bookmarks:1'><item id='room@muc'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish>\
        <publish-options><x xmlns='jabber:x:data' type='submit'>\
          <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
          <field var='pubsub#persist_items'><value>true</value></field>\
          <field var='pubsub#max_items'><value>max</value></field>\
          <field var='pubsub#send_last_published_item'><value>never</value></field>\
          <field var='pubsub#access_model'><value>whitelist</value></field>\
        </x></publish-options></pubsub></iq>");
    let Request::Publish {
        node,
        id,
        payload,
        options,
    } = parse(&iq).unwrap()
    else {
        panic!("not a publish");
    };
    assert_eq!(node, "urn:xmpp:bookmarks:1");
    assert_eq!(id.as_deref(), Some("room@muc"));
    assert!(payload.is("conference", "urn:xmpp:bookmarks:1"));
    let mut config = NodeConfig::pep_default();
    config.apply(&options, 256).unwrap();
    assert_eq!(
        config,
        NodeConfig {
            access: AccessModel::Whitelist,
            persist_items: true,
            max_items: 256,
            send_last: SendLast::Never,
            roster_groups: vec![],
        }
    );
    // §7.1.5 / XEP-0223 §4.4: the same options are met by the node they made; others not.
    assert!(config.satisfies(&options, 256));
    assert!(!NodeConfig::pep_default().satisfies(&options, 256));
}

#[test]
fn xep0060_requests_are_read_and_unsupported_ones_refused() {
    let iq = |ty: &str, inner: &str| {
        el(&format!(
            "<iq xmlns='jabber:client' type='{ty}' id='x'>{inner}</iq>"
        ))
    };
    let ps =
        |inner: &str| format!("<pubsub xmlns='http://jabber.org/protocol/pubsub'>{inner}</pubsub>");
    let owner = |inner: &str| {
        format!("<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>{inner}</pubsub>")
    };
    assert_eq!(
        parse(&iq("get", &ps("<items node='n' max_items='2'/>"))).unwrap(),
        Request::Items {
            node: "n".into(),
            max_items: Some(2),
            ids: vec![]
        }
    );
    assert_eq!(
        parse(&iq(
            "set",
            &ps("<retract node='n' notify='true'><item id='a'/><item id='b'/></retract>")
        ))
        .unwrap(),
        Request::Retract {
            node: "n".into(),
            ids: vec!["a".into(), "b".into()],
            notify: true
        }
    );
    assert_eq!(
        parse(&iq("set", &owner("<delete node='n'/>"))).unwrap(),
        Request::Delete { node: "n".into() }
    );
    assert_eq!(
        parse(&iq("set", &owner("<purge node='n'/>"))).unwrap(),
        Request::Purge { node: "n".into() }
    );
    assert_eq!(
        parse(&iq("get", &owner("<configure node='n'/>"))).unwrap(),
        Request::ConfigureGet { node: "n".into() }
    );
    // §7.1.3.3: a node id is required; §7.1.3.6: one item with one payload.
    let e = parse(&iq(
        "set",
        &ps("<publish><item><x xmlns='y'/></item></publish>"),
    ))
    .unwrap_err();
    assert_eq!(
        (e.condition, e.app),
        (StanzaCondition::BadRequest, Some("nodeid-required"))
    );
    let e = parse(&iq(
        "set",
        &ps("<publish node='n'><item><a xmlns='y'/><b xmlns='y'/></item></publish>"),
    ))
    .unwrap_err();
    assert_eq!(e.app, Some("invalid-payload"));
    let e = parse(&iq("set", &ps("<retract node='n'/>"))).unwrap_err();
    assert_eq!(e.app, Some("item-required"));
    // Subscriptions and affiliations are not part of PEP here.
    let e = parse(&iq("set", &ps("<subscribe node='n' jid='a@b'/>"))).unwrap_err();
    assert_eq!(
        (e.condition, e.app),
        (StanzaCondition::FeatureNotImplemented, Some("unsupported"))
    );
    let err = e.to_stanza_error();
    assert!(err.app.unwrap().is("unsupported", NS_ERRORS));
}

#[test]
fn xep0060_16_4_bad_options_are_not_acceptable() {
    let mut c = NodeConfig::pep_default();
    for (var, value) in [
        ("pubsub#access_model", "authorize"),
        ("pubsub#max_items", "0"),
        ("pubsub#max_items", "1000"),
        ("pubsub#persist_items", "maybe"),
        ("pubsub#made_up", "1"),
    ] {
        let e = c
            .apply(&[(var.into(), vec![value.into()])], 256)
            .unwrap_err();
        assert_eq!(e.condition, StanzaCondition::NotAcceptable, "{var}={value}");
    }
    assert_eq!(c, NodeConfig::pep_default());
}

#[test]
fn xep0060_config_form_round_trips() {
    let mut c = NodeConfig::pep_default();
    c.apply(
        &[
            ("pubsub#access_model".into(), vec!["roster".into()]),
            (
                "pubsub#roster_groups_allowed".into(),
                vec!["Friends".into(), "Family".into()],
            ),
            ("pubsub#max_items".into(), vec!["10".into()]),
        ],
        256,
    )
    .unwrap();
    let mut back = NodeConfig::pep_default();
    back.apply(&form_fields(&c.to_form()), 256).unwrap();
    assert_eq!(back, c);
}

#[test]
fn xep0163_4_notify_interest_and_caps_come_from_presence_and_disco() {
    let info = el("<query xmlns='http://jabber.org/protocol/disco#info'>\
        <feature var='urn:xmpp:avatar:metadata+notify'/><feature var='eu.siacs.conversations.axolotl.devicelist+notify'/>\
        <feature var='urn:xmpp:avatar:metadata'/></query>");
    assert_eq!(
        notify_nodes(&info),
        [
            "urn:xmpp:avatar:metadata",
            "eu.siacs.conversations.axolotl.devicelist"
        ]
    );
    let p = el("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://x' ver='abc='/></presence>");
    assert_eq!(
        caps_of(&p),
        Some(("http://x".into(), "abc=".into(), "sha-1".into()))
    );
    assert_eq!(caps_of(&el("<presence xmlns='jabber:client'/>")), None);
}

#[test]
fn xep0060_results_and_events_have_their_shapes() {
    let item = Item {
        id: "1".into(),
        payload: el("<geoloc xmlns='http://jabber.org/protocol/geoloc'/>"),
    };
    let ev = event_items("n", std::slice::from_ref(&item));
    let items = ev.get_child("items", NS_EVENT).unwrap();
    assert_eq!(items.attr("node"), Some("n"));
    assert_eq!(
        items.get_child("item", NS_EVENT).unwrap().attr("id"),
        Some("1")
    );
    let r = items_result("n", &[item]);
    assert!(r
        .get_child("items", NS)
        .unwrap()
        .get_child("item", NS)
        .is_some());
    let ret = event_retract("n", &["1".into()]);
    assert_eq!(
        ret.get_child("items", NS_EVENT)
            .unwrap()
            .get_child("retract", NS_EVENT)
            .unwrap()
            .attr("id"),
        Some("1")
    );
    assert!(event_delete("n").get_child("delete", NS_EVENT).is_some());
    assert_eq!(
        publish_result("n", "x")
            .get_child("publish", NS)
            .unwrap()
            .get_child("item", NS)
            .unwrap()
            .attr("id"),
        Some("x")
    );
}
