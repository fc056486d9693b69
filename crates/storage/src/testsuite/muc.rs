//! Suite checks for multi-user chat rooms (XEP-0045): creation once per name under a cap per
//! owner (concurrent creations included), a room's whole state read back, listings, and
//! destruction with the room's archive.

use parley_proto::mam::{Default as ArchiveDefault, With};

use super::*;
use crate::{
    ArchivePolicy, ArchiveRecord, RoomAffiliationRow, RoomCreated, RoomOccupantRow, RoomRecord,
};

fn room(service: &str, name: &str, public: bool) -> RoomRecord {
    RoomRecord {
        service: service.to_owned(),
        name: name.to_owned(),
        config: format!(r#"{{"title":"{name}"}}"#),
        subject: None,
        public,
        persistent: true,
        created_ms: 1_700_000_000_000,
    }
}

fn affiliation(jid: &str, affiliation: &str, nick: Option<&str>) -> RoomAffiliationRow {
    RoomAffiliationRow {
        jid: jid.to_owned(),
        affiliation: affiliation.to_owned(),
        nick: nick.map(str::to_owned),
        reason: None,
    }
}

fn occupant(jid: &str, nick: &str, role: &str) -> RoomOccupantRow {
    RoomOccupantRow {
        jid: jid.to_owned(),
        nick: nick.to_owned(),
        role: role.to_owned(),
        presence: format!(
            "<presence xmlns='jabber:client' from='{jid}'><show>{role}</show></presence>"
        ),
    }
}

async fn create(
    storage: &dyn Storage,
    record: &RoomRecord,
    owner: &str,
    max_owned: usize,
) -> RoomCreated {
    storage
        .muc_create_room(record, owner, max_owned)
        .await
        .unwrap_or_else(|e| panic!("muc_create_room {}@{}: {e}", record.name, record.service))
}

async fn names(
    storage: &dyn Storage,
    service: &str,
    after: Option<&str>,
    limit: usize,
    public_only: bool,
) -> Vec<String> {
    storage
        .muc_rooms(service, after, limit, public_only)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

/// XEP-0045 §10.1: a room is created once (a second creation, by anyone, finds it), its
/// creator becomes its owner, and a service may cap how many rooms one owner creates; the
/// cap holds under concurrent creations, and one room raced for by many is created once.
pub(super) async fn xep0045_rooms_are_created_once_and_capped_per_owner(
    storage: &Arc<dyn Storage>,
    run: &Run,
) {
    let s = &**storage;
    let service = run.host("muc-create");
    let lobby = room(&service, "lobby", true);
    assert_eq!(
        create(s, &lobby, "alice@x.example", 2).await,
        RoomCreated::Created
    );
    assert_eq!(
        create(s, &lobby, "alice@x.example", 2).await,
        RoomCreated::Exists
    );
    assert_eq!(
        create(s, &lobby, "bob@x.example", 2).await,
        RoomCreated::Exists
    );
    let state = s.muc_room(&service, "lobby").await.unwrap().unwrap();
    assert_eq!(state.room, lobby);
    assert_eq!(
        state.affiliations,
        vec![affiliation("alice@x.example", "owner", None)]
    );
    assert!(state.occupants.is_empty());

    assert_eq!(
        create(s, &room(&service, "second", true), "alice@x.example", 2).await,
        RoomCreated::Created
    );
    assert_eq!(
        create(s, &room(&service, "third", true), "alice@x.example", 2).await,
        RoomCreated::TooMany
    );
    assert!(s.muc_room(&service, "third").await.unwrap().is_none());
    // An existing room is reported as such, whatever the cap.
    assert_eq!(
        create(s, &lobby, "alice@x.example", 2).await,
        RoomCreated::Exists
    );
    // The cap is per owner and per service.
    assert_eq!(
        create(s, &room(&service, "third", true), "bob@x.example", 2).await,
        RoomCreated::Created
    );
    let other_service = run.host("muc-create-other");
    assert_eq!(
        create(
            s,
            &room(&other_service, "third", true),
            "alice@x.example",
            2
        )
        .await,
        RoomCreated::Created
    );
    // Owning through a granted affiliation counts too; losing it frees a place.
    s.muc_set_affiliation(
        &service,
        "third",
        &affiliation("alice@x.example", "owner", None),
    )
    .await
    .unwrap();
    assert!(s.muc_destroy_room(&service, "second").await.unwrap());
    assert_eq!(
        create(s, &room(&service, "fourth", true), "alice@x.example", 2).await,
        RoomCreated::TooMany
    );
    s.muc_set_affiliation(
        &service,
        "third",
        &affiliation("alice@x.example", "none", None),
    )
    .await
    .unwrap();
    assert_eq!(
        create(s, &room(&service, "fourth", true), "alice@x.example", 2).await,
        RoomCreated::Created
    );
    assert_eq!(s.muc_room_count(&service).await.unwrap(), 3);

    // One owner creating many rooms at once never passes the cap.
    const ROOMS: usize = 20;
    const MAX: usize = 3;
    let service = run.host("muc-create-concurrent");
    let tasks: Vec<_> = (0..ROOMS)
        .map(|i| {
            let storage = Arc::clone(storage);
            let record = room(&service, &format!("room{i}"), true);
            tokio::spawn(async move {
                storage
                    .muc_create_room(&record, "carol@x.example", MAX)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("muc_create_room task").unwrap() {
            RoomCreated::Created => created += 1,
            RoomCreated::TooMany => {}
            RoomCreated::Exists => panic!("distinct rooms cannot exist already"),
        }
    }
    assert_eq!(created, MAX, "creations reported as done");
    assert_eq!(
        s.muc_room_count(&service).await.unwrap(),
        u64::try_from(MAX).unwrap()
    );

    // Many owners racing for one room: one creates it, the others find it.
    const OWNERS: usize = 10;
    let tasks: Vec<_> = (0..OWNERS)
        .map(|i| {
            let storage = Arc::clone(storage);
            let record = room(&service, "contested", true);
            tokio::spawn(async move {
                storage
                    .muc_create_room(&record, &format!("owner{i}@x.example"), MAX)
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("muc_create_room task").unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == RoomCreated::Created)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RoomCreated::Created | RoomCreated::Exists)),
        "{outcomes:?}"
    );
    let contested = s.muc_room(&service, "contested").await.unwrap().unwrap();
    assert_eq!(contested.affiliations.len(), 1, "{contested:?}");
    assert_eq!(contested.affiliations[0].affiliation, "owner");
}

/// XEP-0045 §9-§10: what a room actor keeps (affiliations with reserved nicks and reasons,
/// occupants with their roles and presence, configuration and subject) reads back as
/// written, replaced per JID, and per room.
pub(super) async fn xep0045_room_state_round_trips(storage: &dyn Storage, run: &Run) {
    let service = run.host("muc-state");
    let mut lobby = room(&service, "lobby", false);
    assert!(storage.muc_room(&service, "lobby").await.unwrap().is_none());
    assert!(!storage.muc_update_room(&lobby).await.unwrap());
    assert_eq!(
        create(storage, &lobby, "alice@x.example", 10).await,
        RoomCreated::Created
    );
    assert_eq!(
        create(storage, &room(&service, "other", true), "zed@x.example", 10).await,
        RoomCreated::Created
    );

    // Affiliations: set, replaced per JID, `none` removes.
    let mut carol = affiliation("carol@x.example", "admin", None);
    carol.reason = Some("helps out".to_owned());
    for row in [
        affiliation("bob@x.example", "member", Some("bobby")),
        carol.clone(),
        affiliation("dave@x.example", "outcast", None),
        affiliation("erin@x.example", "member", Some("erin")),
    ] {
        storage
            .muc_set_affiliation(&service, "lobby", &row)
            .await
            .unwrap();
    }
    storage
        .muc_set_affiliation(
            &service,
            "lobby",
            &affiliation("bob@x.example", "admin", None),
        )
        .await
        .unwrap();
    storage
        .muc_set_affiliation(
            &service,
            "lobby",
            &affiliation("erin@x.example", "none", None),
        )
        .await
        .unwrap();
    // Removing an affiliation nobody has changes nothing.
    storage
        .muc_set_affiliation(
            &service,
            "lobby",
            &affiliation("nobody@x.example", "none", None),
        )
        .await
        .unwrap();
    assert!(storage
        .muc_set_affiliation(
            &service,
            "lobby",
            &affiliation("frank@x.example", "moderator", None)
        )
        .await
        .is_err());

    // Occupants: one row per real full JID, replaced, removed, cleared.
    for row in [
        occupant("alice@x.example/home", "alice", "moderator"),
        occupant("bob@x.example/phone", "bob", "participant"),
        occupant("bob@x.example/laptop", "bob", "participant"),
        occupant("carol@x.example/desk", "carol", "participant"),
    ] {
        storage
            .muc_put_occupant(&service, "lobby", &row)
            .await
            .unwrap();
    }
    let demoted = occupant("bob@x.example/phone", "bobby", "visitor");
    storage
        .muc_put_occupant(&service, "lobby", &demoted)
        .await
        .unwrap();
    storage
        .muc_remove_occupant(&service, "lobby", "bob@x.example/laptop")
        .await
        .unwrap();
    storage
        .muc_remove_occupant(&service, "lobby", "nobody@x.example/r")
        .await
        .unwrap();
    assert!(storage
        .muc_put_occupant(
            &service,
            "lobby",
            &occupant("frank@x.example/r", "frank", "owner")
        )
        .await
        .is_err());

    // Configuration and subject.
    lobby.config = r#"{"title":"The lobby","members_only":true}"#.to_owned();
    lobby.subject = Some(
        "<message xmlns='jabber:client' type='groupchat'><subject>Hi</subject></message>"
            .to_owned(),
    );
    lobby.public = true;
    lobby.persistent = false;
    assert!(storage.muc_update_room(&lobby).await.unwrap());

    let state = storage.muc_room(&service, "lobby").await.unwrap().unwrap();
    assert_eq!(state.room, lobby);
    assert_eq!(
        state.affiliations,
        vec![
            affiliation("alice@x.example", "owner", None),
            affiliation("bob@x.example", "admin", None),
            carol,
            affiliation("dave@x.example", "outcast", None),
        ]
    );
    assert_eq!(
        state.occupants,
        vec![
            occupant("alice@x.example/home", "alice", "moderator"),
            demoted,
            occupant("carol@x.example/desk", "carol", "participant"),
        ]
    );

    // The subject can go again; the other room saw none of it.
    lobby.subject = None;
    assert!(storage.muc_update_room(&lobby).await.unwrap());
    assert_eq!(
        storage
            .muc_room(&service, "lobby")
            .await
            .unwrap()
            .unwrap()
            .room
            .subject,
        None
    );
    let other = storage.muc_room(&service, "other").await.unwrap().unwrap();
    assert_eq!(other.room, room(&service, "other", true));
    assert_eq!(
        other.affiliations,
        vec![affiliation("zed@x.example", "owner", None)]
    );
    assert!(other.occupants.is_empty());

    storage
        .muc_clear_occupants(&service, "lobby")
        .await
        .unwrap();
    let state = storage.muc_room(&service, "lobby").await.unwrap().unwrap();
    assert!(state.occupants.is_empty());
    assert_eq!(
        state.affiliations.len(),
        4,
        "affiliations outlive occupants"
    );
}

/// XEP-0045 §6.3: a service lists its rooms in pages (XEP-0059 `after`), in byte order,
/// hiding the rooms that are not public when asked to.
pub(super) async fn xep0045_listing_pages_and_hides_private_rooms(
    storage: &dyn Storage,
    run: &Run,
) {
    let service = run.host("muc-list");
    assert!(names(storage, &service, None, 10, false).await.is_empty());
    assert_eq!(storage.muc_room_count(&service).await.unwrap(), 0);
    // Byte order: `é` (0xC3 0xA9) after `z`, whatever the database's locale.
    for (name, public) in [
        ("émile", true),
        ("c", true),
        ("a", true),
        ("b", false),
        ("z", false),
        ("d", true),
    ] {
        assert_eq!(
            create(
                storage,
                &room(&service, name, public),
                "alice@x.example",
                100
            )
            .await,
            RoomCreated::Created
        );
    }
    let other = run.host("muc-list-other");
    create(storage, &room(&other, "aa", true), "alice@x.example", 100).await;

    assert_eq!(
        names(storage, &service, None, 10, false).await,
        ["a", "b", "c", "d", "z", "émile"]
    );
    assert_eq!(names(storage, &service, None, 2, false).await, ["a", "b"]);
    assert_eq!(
        names(storage, &service, Some("b"), 2, false).await,
        ["c", "d"]
    );
    assert_eq!(
        names(storage, &service, Some("d"), 2, false).await,
        ["z", "émile"]
    );
    assert!(names(storage, &service, Some("émile"), 2, false)
        .await
        .is_empty());
    // `after` need not name a room.
    assert_eq!(names(storage, &service, Some("bb"), 1, false).await, ["c"]);

    assert_eq!(
        names(storage, &service, None, 10, true).await,
        ["a", "c", "d", "émile"]
    );
    assert_eq!(names(storage, &service, None, 2, true).await, ["a", "c"]);
    assert_eq!(
        names(storage, &service, Some("c"), 2, true).await,
        ["d", "émile"]
    );
    assert!(names(storage, &service, None, 0, false).await.is_empty());

    let listed = storage
        .muc_rooms(&service, Some("c"), 1, true)
        .await
        .unwrap();
    assert_eq!(listed, vec![room(&service, "d", true)]);
    assert_eq!(storage.muc_room_count(&service).await.unwrap(), 6);
    assert_eq!(storage.muc_room_count(&other).await.unwrap(), 1);
}

/// XEP-0045 §10.9: destroying a room removes it with its affiliations, occupants and
/// archive (XEP-0313 for MUC, stored as `name@service`'s), and nothing of another room; a
/// room created again under the name starts empty.
pub(super) async fn xep0045_destroy_removes_everything(storage: &dyn Storage, run: &Run) {
    let service = run.host("muc-destroy");
    for name in ["doomed", "kept"] {
        create(storage, &room(&service, name, true), "alice@x.example", 10).await;
        storage
            .muc_set_affiliation(
                &service,
                name,
                &affiliation("bob@x.example", "member", Some("bob")),
            )
            .await
            .unwrap();
        storage
            .muc_put_occupant(
                &service,
                name,
                &occupant("bob@x.example/r", "bob", "participant"),
            )
            .await
            .unwrap();
    }
    let policy = ArchivePolicy {
        default: ArchiveDefault::Always,
        max_items: 1000,
        max_bytes: 1 << 20,
    };
    let message = |name: &str, body: &str| ArchiveRecord {
        username: name.to_owned(),
        host: service.clone(),
        id: parley_proto::mam::new_id(),
        with: With::parse(&format!("{name}@{service}/bob")).unwrap(),
        stamp_ms: 1_700_000_000_000,
        stanza: format!(
            "<message xmlns='jabber:client' type='groupchat'><body>{body}</body></message>"
        ),
    };
    storage
        .archive_insert(
            vec![
                message("doomed", "one"),
                message("doomed", "two"),
                message("kept", "three"),
            ],
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(storage.archive_size("doomed", &service).await.unwrap().0, 2);

    assert!(storage.muc_destroy_room(&service, "doomed").await.unwrap());
    assert!(storage
        .muc_room(&service, "doomed")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        storage.archive_size("doomed", &service).await.unwrap(),
        (0, 0)
    );
    assert!(!storage.muc_destroy_room(&service, "doomed").await.unwrap());
    assert!(!storage
        .muc_update_room(&room(&service, "doomed", true))
        .await
        .unwrap());
    assert_eq!(storage.muc_room_count(&service).await.unwrap(), 1);
    assert_eq!(names(storage, &service, None, 10, false).await, ["kept"]);

    let kept = storage.muc_room(&service, "kept").await.unwrap().unwrap();
    assert_eq!(kept.affiliations.len(), 2);
    assert_eq!(kept.occupants.len(), 1);
    assert_eq!(storage.archive_size("kept", &service).await.unwrap().0, 1);

    // A write that raced the destruction leaves nothing to a room created again.
    storage
        .muc_put_occupant(
            &service,
            "doomed",
            &occupant("late@x.example/r", "late", "participant"),
        )
        .await
        .unwrap();
    storage
        .muc_set_affiliation(
            &service,
            "doomed",
            &affiliation("late@x.example", "admin", None),
        )
        .await
        .unwrap();
    assert_eq!(
        create(
            storage,
            &room(&service, "doomed", false),
            "bob@x.example",
            10
        )
        .await,
        RoomCreated::Created
    );
    let again = storage.muc_room(&service, "doomed").await.unwrap().unwrap();
    assert_eq!(again.room, room(&service, "doomed", false));
    assert_eq!(
        again.affiliations,
        vec![affiliation("bob@x.example", "owner", None)]
    );
    assert!(again.occupants.is_empty());
}

/// Rooms are the service's, not their owners': deleting an owner's account leaves its
/// rooms and affiliations (XEP-0045 leaves ownership to the room's other owners and the
/// service's admins).
pub(super) async fn xep0045_rooms_outlive_their_owners_accounts(storage: &dyn Storage, run: &Run) {
    let host = run.host("muc-accounts");
    let service = format!("conference.{host}");
    let owner = format!("alice@{host}");
    storage.create_account("alice", &host, &[]).await.unwrap();
    create(storage, &room(&service, "lobby", true), &owner, 10).await;
    storage.delete_account("alice", &host).await.unwrap();
    let state = storage.muc_room(&service, "lobby").await.unwrap().unwrap();
    assert_eq!(state.affiliations, vec![affiliation(&owner, "owner", None)]);
}
