//! Wiring of multi-user chat (XEP-0045): the room service from `[muc]` on each served
//! host's `conference.` domain, its archive through the node's archive writer, and, in a
//! cluster, its placement and hand-off through the node.

use std::sync::Arc;

use actix_rt::ArbiterHandle;
use jid::BareJid;
use parley_cluster::node::{Node, RoomHost};
use parley_muc::{RoomArchive, RoomControl, RoomPlacement, Rooms};
use parley_router::Router;
use parley_session::archive::writer::{ArchiveWriter, Progress};
use parley_storage::{ArchiveRecord, Storage};
use parley_xml::Element;

use crate::config::Config;

/// Starts the room service when `[muc] enabled`.
pub(crate) fn start(
    config: &Config,
    router: &Arc<Router>,
    storage: &Arc<dyn Storage>,
    archive: Option<Arc<ArchiveWriter>>,
    workers: Vec<ArbiterHandle>,
) -> Option<Arc<Rooms>> {
    let c = &config.muc;
    if !c.enabled {
        return None;
    }
    let services = config
        .server
        .hosts
        .iter()
        .map(|host| format!("{}.{host}", c.subdomain))
        .collect();
    let archive = archive.map(|w| Arc::new(WriterArchive(w)) as Arc<dyn RoomArchive>);
    let rooms = Rooms::new(
        services,
        router.clone(),
        storage.clone(),
        c.settings(&config.mam),
        archive,
        workers,
    );
    Some(rooms)
}

/// Resolves once every record queued on the writer before it is written (or given up): an
/// empty job queued after them, whose progress the writer raises with the batch that
/// carries it — the writer takes its jobs in order.
async fn written(writer: &ArchiveWriter) {
    let progress = Arc::new(Progress::default());
    if let Err(queued) = writer.submit(Vec::new(), progress.clone(), 1) {
        queued.await;
    }
    progress.reached(1).await;
}

/// The services the router hands the rooms' stanzas to.
pub(crate) fn services(rooms: &Arc<Rooms>) -> Vec<(String, Arc<dyn parley_router::Service>)> {
    rooms
        .services()
        .map(|s| {
            (
                s.to_owned(),
                rooms.clone() as Arc<dyn parley_router::Service>,
            )
        })
        .collect()
}

struct WriterArchive(Arc<ArchiveWriter>);

impl RoomArchive for WriterArchive {
    fn append(&self, record: ArchiveRecord) {
        self.0.append_decided(vec![record]);
    }

    fn written(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let writer = self.0.clone();
        Box::pin(async move { written(&writer).await })
    }
}

/// Rooms placed on the cluster's nodes.
struct ClusterRooms(Arc<Node>);

impl RoomPlacement for ClusterRooms {
    fn owner(&self, room: &BareJid) -> Option<Arc<str>> {
        self.0.room_owner(room.as_str())
    }

    fn forward(&self, node: &str, stanza: Element) -> Result<(), Element> {
        self.0.forward_to_room(node, stanza)
    }

    fn reload(&self, node: &str, room: &BareJid) {
        self.0.room_reload(node, room.as_str());
    }

    fn control(&self, node: &str, room: &BareJid, op: RoomControl) {
        match serde_json::to_string(&op) {
            Ok(op) => self.0.room_control(node, room.as_str(), op),
            Err(e) => tracing::warn!(error = %e, "room control not encoded"),
        }
    }
}

/// The node's side: forwarded stanzas, reloads, admin actions and hand-offs.
struct Host(Arc<Rooms>);

impl RoomHost for Host {
    fn accept(&self, stanza: Element, from: &str) {
        self.0.accept_from(stanza, from);
    }

    fn reroute(&self, stanza: Element) {
        parley_router::Service::accept(&*self.0, stanza);
    }

    fn reload(&self, room: &str) {
        if let Ok(room) = BareJid::new(room) {
            self.0.reload_here(&room);
        }
    }

    fn control(&self, room: &str, op: &str) {
        let (Ok(room), Ok(op)) = (BareJid::new(room), serde_json::from_str::<RoomControl>(op))
        else {
            return;
        };
        let rooms = self.0.clone();
        tokio::spawn(async move {
            rooms.control_here(&room, op).await;
        });
    }

    fn hand_off(&self, owned_here: &dyn Fn(&str) -> bool) -> usize {
        self.0.hand_off(|room| owned_here(room.as_str()))
    }

    fn leave(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let rooms = self.0.clone();
        Box::pin(async move { rooms.leave().await })
    }
}

/// Plugs the rooms into the cluster: placement one way, forwarded stanzas the other.
pub(crate) fn join_cluster(rooms: &Arc<Rooms>, node: &Arc<Node>) {
    rooms.set_placement(Arc::new(ClusterRooms(node.clone())));
    node.set_room_host(Arc::new(Host(rooms.clone())));
}
