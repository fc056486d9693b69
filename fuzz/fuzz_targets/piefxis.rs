//! XEP-0227 files (`parley user import --piefxis`): the bytes of a file another server
//! exported, parsed under the import's limits and read by `parley_proto::piefxis::read`.
//!
//! Invariants: no panic; every include read is a plain file name (no directory, no `..`);
//! SCRAM data read has keys of its hash's length and a positive iteration count; what the
//! reader took from a `<user/>` writes back (`user_element`, never a password) and reads
//! back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::piefxis::{read, user_element, Part, User};
use parley_proto::sasl::ScramHash;
use parley_xml::{Element, Limits};

fn check_user(user: &User) {
    for c in &user.scram {
        let len = match c.hash {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        };
        assert!(c.iterations > 0 && c.stored_key.len() == len && c.server_key.len() == len);
    }
    let written = user_element(user);
    assert_eq!(written.attr("password"), None);
    let bytes = written.to_bytes_in(None);
    let again = Element::parse(&bytes, &Limits::trusted_copies()).expect("our output parses");
    let Ok(Part::User(back)) = read(&again) else {
        panic!("our output reads back as a user");
    };
    assert_eq!(back.name, user.name);
    assert_eq!(back.scram, user.scram);
    assert_eq!(back.roster, user.roster);
}

fn check_include(href: &str) {
    assert!(!href.is_empty() && !href.contains(['/', '\\']) && href != "..");
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        ..Limits::default()
    };
    let Ok(root) = Element::parse(data, &limits) else {
        return;
    };
    match read(&root) {
        Ok(Part::ServerData { hosts, includes }) => {
            includes.iter().for_each(|h| check_include(h));
            for host in &hosts {
                host.includes.iter().for_each(|h| check_include(h));
                host.users.iter().for_each(check_user);
            }
        }
        Ok(Part::Host(host)) => {
            host.includes.iter().for_each(|h| check_include(h));
            host.users.iter().for_each(check_user);
        }
        Ok(Part::User(user)) => check_user(&user),
        Err(_) => {}
    }
});
