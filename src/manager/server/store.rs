//! The server's objects: a table of [`Object`]s by id, with names, and
//! what a connection (a [`Session`]) holds.

use super::ordered::OrderedMap;
use crate::manager::custom::{Erased, Registry};
use crate::manager::protocol::{Blob, Failure, Kind, Reply, Spec, Wait};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How often a wait checks that its client is still there.
const CHECK_PEER: Duration = Duration::from_millis(50);

/// One shared object.
pub(crate) struct Object {
    pub(crate) kind: Kind,
    pub(crate) types: u64,
    pub(crate) type_names: String,
    state: Mutex<State>,
    /// Notified on every change a waiter may be waiting for.
    pub(crate) changed: Condvar,
}

/// The contents of an object.
pub(crate) enum State {
    Dict(OrderedMap),
    List(Vec<Blob>),
    /// Attribute name → (type fingerprint, type name, value).
    Namespace(BTreeMap<String, (u64, String, Blob)>),
    Queue {
        items: VecDeque<Blob>,
        /// 0: unbounded.
        bound: usize,
    },
    Lock {
        /// The session holding it.
        holder: Option<u64>,
        /// Its last holder's connection ended while it held it.
        died: bool,
    },
    Event(bool),
    Value(Blob),
    Custom(Box<dyn Erased>),
}

impl Object {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `ready` returns something, the wait's limit passes
    /// ([`Failure::Timeout`]) or the session's client goes away.
    pub(crate) fn wait_for<T>(
        &self,
        session: &Session<'_>,
        wait: Wait,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, Failure> {
        let deadline = wait.and_then(|w| Instant::now().checked_add(w));
        let mut state = self.state();
        loop {
            // Make sure someone still wants the answer before taking
            // anything (a queue item, a lock) for it: first, and after
            // every wait.
            if (session.gone)() {
                return Err(Failure::Misuse("the client went away".into()));
            }
            if let Some(x) = ready(&mut state) {
                return Ok(x);
            }
            let slice = match deadline {
                None => CHECK_PEER,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::Timeout);
                    }
                    left.min(CHECK_PEER)
                }
            };
            state = self
                .changed
                .wait_timeout(state, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What one connection is and holds.
pub(crate) struct Session<'a> {
    pub(crate) id: u64,
    /// Locks this session holds, released if it ends first.
    pub(crate) held: Vec<Arc<Object>>,
    /// Whether the client has hung up (checked during long waits).
    pub(crate) gone: &'a dyn Fn() -> bool,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for lock in self.held.drain(..) {
            let mut state = lock.state();
            if let State::Lock { holder, died } = &mut *state {
                if *holder == Some(self.id) {
                    *holder = None;
                    *died = true;
                }
            }
            drop(state);
            lock.changed.notify_all();
        }
    }
}

#[derive(Default)]
struct Table {
    objects: HashMap<u64, Arc<Object>>,
    names: HashMap<String, u64>,
}

/// Every object of a server.
pub(crate) struct Store {
    table: Mutex<Table>,
    next: AtomicU64,
    registry: Registry,
}

impl Store {
    pub(crate) fn new(registry: Registry) -> Store {
        Store {
            table: Mutex::new(Table::default()),
            next: AtomicU64::new(1),
            registry,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: u64) -> Result<Arc<Object>, Failure> {
        self.table()
            .objects
            .get(&id)
            .cloned()
            .ok_or_else(|| Failure::Misuse(format!("the manager has no object {id}")))
    }

    /// Puts `item` back at the head of queue `id` (taken for a client that
    /// left before it got it).
    pub(crate) fn requeue(&self, id: u64, item: Blob) {
        if let Ok(obj) = self.get(id) {
            if let State::Queue { items, .. } = &mut *obj.state() {
                items.push_front(item);
            }
            obj.changed.notify_all();
        }
    }

    /// Creates an object, or with a name finds the one of that name.
    pub(crate) fn create(&self, spec: Spec, name: Option<String>) -> Reply {
        match self.create_inner(spec, name) {
            Ok(id) => Reply::Id(id),
            Err(f) => Reply::Failed(f),
        }
    }

    fn create_inner(&self, spec: Spec, name: Option<String>) -> Result<u64, Failure> {
        if let Some(name) = &name {
            let table = self.table();
            if let Some(id) = table.names.get(name) {
                let obj = &table.objects[id];
                if obj.kind != spec.kind || obj.types != spec.types {
                    return Err(Failure::Misuse(format!(
                        "the object named `{name}` is a {} of `{}`, not a {} of `{}`",
                        obj.kind, obj.type_names, spec.kind, spec.type_names
                    )));
                }
                return Ok(*id);
            }
        }
        // Built outside the table's lock: a registered type's `new` is
        // user code.
        let state = self.initial_state(&spec)?;
        let obj = Arc::new(Object {
            kind: spec.kind,
            types: spec.types,
            type_names: spec.type_names,
            state: Mutex::new(state),
            changed: Condvar::new(),
        });
        let mut table = self.table();
        if let Some(name) = &name {
            if let Some(id) = table.names.get(name) {
                // Another client made it in the meantime: theirs wins.
                let other = &table.objects[id];
                if other.kind == obj.kind && other.types == obj.types {
                    return Ok(*id);
                }
                return Err(Failure::Misuse(format!(
                    "the object named `{name}` is a {} of `{}`",
                    other.kind, other.type_names
                )));
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        table.objects.insert(id, obj);
        if let Some(name) = name {
            table.names.insert(name, id);
        }
        Ok(id)
    }

    fn initial_state(&self, spec: &Spec) -> Result<State, Failure> {
        let bad_init = || Failure::Decode(format!("bad initial state for a {}", spec.kind));
        Ok(match &spec.kind {
            Kind::Dict => State::Dict(OrderedMap::default()),
            Kind::List => State::List(Vec::new()),
            Kind::Namespace => State::Namespace(BTreeMap::new()),
            Kind::Queue => {
                let bound: u64 = crate::wire::decode_plain(&spec.init.0).map_err(|_| bad_init())?;
                State::Queue {
                    items: VecDeque::new(),
                    bound: usize::try_from(bound).unwrap_or(usize::MAX),
                }
            }
            Kind::Lock => State::Lock {
                holder: None,
                died: false,
            },
            Kind::Event => State::Event(false),
            Kind::Value => State::Value(spec.init.clone()),
            Kind::Custom(id) => State::Custom(self.registry.build(id, spec.types, &spec.init.0)?),
        })
    }
}
