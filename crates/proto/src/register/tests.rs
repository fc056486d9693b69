//! Unit tests of registration requests and invitations, each naming its XEP section.

use parley_xml::{Element, Limits};

use super::*;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn xep0077_3_1_requests_are_read() {
    let get =
        el("<iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:register'/></iq>");
    assert_eq!(parse(&get), Ok(Request::Form));
    assert!(is_request(&get));
    let set = el("<iq xmlns='jabber:client' type='set' id='2'><query xmlns='jabber:iq:register'><username>bill</username><password>Calliope</password></query></iq>");
    assert_eq!(
        parse(&set),
        Ok(Request::Register {
            username: "bill".into(),
            password: "Calliope".into()
        })
    );
    let remove = el("<iq xmlns='jabber:client' type='set' id='3'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    assert_eq!(parse(&remove), Ok(Request::Remove));
    let half = el("<iq xmlns='jabber:client' type='set' id='4'><query xmlns='jabber:iq:register'><username>bill</username></query></iq>");
    assert_eq!(parse(&half), Err(RequestError::MissingFields));
    let result = el(
        "<iq xmlns='jabber:client' type='result' id='5'><query xmlns='jabber:iq:register'/></iq>",
    );
    assert_eq!(parse(&result), Err(RequestError::BadType));
    let other =
        el("<iq xmlns='jabber:client' type='get' id='6'><query xmlns='jabber:iq:roster'/></iq>");
    assert_eq!(parse(&other), Err(RequestError::NoQuery));
    assert!(!is_request(&other));
    let long = format!(
        "<iq xmlns='jabber:client' type='set' id='7'><query xmlns='jabber:iq:register'><username>{}</username><password>p</password></query></iq>",
        "a".repeat(MAX_FIELD_CHARS + 1)
    );
    assert_eq!(parse(&el(&long)), Err(RequestError::TooLong));
}

#[test]
fn xep0445_4_preauth_is_read() {
    let pre = el("<iq xmlns='jabber:client' type='set' id='1'><preauth xmlns='urn:xmpp:pars:0' token='abc'/></iq>");
    assert_eq!(
        parse(&pre),
        Ok(Request::Preauth {
            token: "abc".into()
        })
    );
    assert!(is_request(&pre));
    let empty =
        el("<iq xmlns='jabber:client' type='set' id='1'><preauth xmlns='urn:xmpp:pars:0'/></iq>");
    assert_eq!(parse(&empty), Err(RequestError::NoToken));
    let get = el("<iq xmlns='jabber:client' type='get' id='1'><preauth xmlns='urn:xmpp:pars:0' token='abc'/></iq>");
    assert_eq!(parse(&get), Err(RequestError::BadType));
}

#[test]
fn xep0401_invites_are_random_hashed_and_uri_safe() {
    let a = new_invite();
    let b = new_invite();
    assert_ne!(a.token, b.token);
    assert_ne!(a.id, b.id);
    assert_eq!(a.token.len(), 43);
    assert!(a
        .token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_eq!(a.secret_hash, invite_hash(&a.token));
    assert_eq!(a.secret_hash.len(), 64);
    assert!(!a.secret_hash.contains(&a.token));
    assert_eq!(
        invite_uri("example.com", "T0k"),
        "xmpp:example.com?register;preauth=T0k"
    );
    // XEP-0445 §3: the invitation feature only where invitations are taken.
    assert_eq!(features(false).len(), 1);
    assert!(features(true)[1].is("register", INVITE_FEATURE_NS));
}
