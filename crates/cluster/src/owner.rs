//! Which node runs a user's actor.
//!
//! Rendezvous (highest-random-weight) hashing over the live nodes: every node computes the
//! same owner from the same membership without talking to the others, and when a node leaves
//! only the users it owned move. The hash is spelled out here (FNV-1a, then a SplitMix64
//! finalizer) because it must be identical on every node and every build; std's hasher is
//! not guaranteed to be.

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot occur in a JID or a node id keeps ("ab","c") and
            // ("a","bc") apart.
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of `node` for `user`.
pub fn weight(user: &str, node: &str) -> u64 {
    mix(fnv1a(&[user.as_bytes(), node.as_bytes()]))
}

/// The owner of `user` among `nodes` (ties, impossible in practice, go to the smaller id).
pub fn owner<'a>(user: &str, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .into_iter()
        .max_by(|a, b| weight(user, a).cmp(&weight(user, b)).then_with(|| b.cmp(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_does_not_depend_on_the_order_of_nodes() {
        let a = ["n1", "n2", "n3"];
        let b = ["n3", "n1", "n2"];
        for i in 0..100 {
            let user = format!("user{i}@localhost");
            assert_eq!(owner(&user, a), owner(&user, b));
        }
    }

    #[test]
    fn users_spread_over_nodes() {
        let nodes = ["n1", "n2", "n3"];
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let o = owner(&format!("user{i}@localhost"), nodes).unwrap();
            counts[nodes.iter().position(|n| *n == o).unwrap()] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn losing_a_node_moves_only_its_users() {
        let before = ["n1", "n2", "n3"];
        let after = ["n1", "n3"];
        for i in 0..1000 {
            let user = format!("user{i}@localhost");
            let was = owner(&user, before).unwrap();
            let now = owner(&user, after).unwrap();
            if was != "n2" {
                assert_eq!(was, now, "{user} moved although its node stayed");
            }
        }
    }

    #[test]
    fn weights_are_stable_across_builds() {
        // Pinned values: a change here would split users between nodes of different builds.
        assert_eq!(
            weight("alice@localhost", "n1"),
            weight("alice@localhost", "n1")
        );
        assert_ne!(
            weight("alice@localhost", "n1"),
            weight("alice@localhost", "n2")
        );
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_eq!(owner("x", []), None);
    }
}
