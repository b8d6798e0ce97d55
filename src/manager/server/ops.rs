//! What each [`Op`] does to an object.

use super::store::{Object, Session, State, Store};
use crate::manager::protocol::{Failure, Op, Reply};
use std::sync::Arc;

/// Applies `op` to object `id` for `session`.
pub(crate) fn apply(store: &Store, session: &mut Session<'_>, id: u64, op: Op) -> Reply {
    let result = store.get(id).and_then(|obj| apply_to(&obj, session, op));
    result.unwrap_or_else(Reply::Failed)
}

fn wrong(op: &Op, obj: &Object) -> Failure {
    Failure::Misuse(format!(
        "{} is not an operation of a {}",
        op_name(op),
        obj.kind
    ))
}

fn op_name(op: &Op) -> String {
    let s = format!("{op:?}");
    s.split(['(', ' ']).next().unwrap_or_default().to_owned()
}

/// Python's index rules: a negative index counts from the end.
fn position(i: i64, len: usize, inclusive_end: bool) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let at = if i < 0 { len_i + i } else { i };
    let limit = if inclusive_end { len_i } else { len_i - 1 };
    (0..=limit).contains(&at).then_some(at as usize)
}

fn out_of_range(i: i64, len: usize) -> Failure {
    Failure::Misuse(format!("index {i} is out of range for a list of {len}"))
}

fn apply_to(obj: &Arc<Object>, session: &mut Session<'_>, op: Op) -> Result<Reply, Failure> {
    match op {
        Op::QueuePut(item, wait) => {
            let mut item = Some(item);
            obj.wait_for(session, wait, |state| match state {
                State::Queue { items, bound } if *bound == 0 || items.len() < *bound => {
                    items.push_back(item.take().expect("put once"));
                    Some(Ok(()))
                }
                State::Queue { .. } => None,
                _ => Some(Err(())),
            })?
            .map_err(|()| {
                Failure::Misuse(format!("QueuePut is not an operation of a {}", obj.kind))
            })?;
            obj.changed.notify_all();
            Ok(Reply::Done)
        }
        Op::QueueGet(wait) => {
            let got = obj.wait_for(session, wait, |state| match state {
                State::Queue { items, .. } => items.pop_front().map(Ok),
                _ => Some(Err(())),
            })?;
            let item = got.map_err(|()| {
                Failure::Misuse(format!("QueueGet is not an operation of a {}", obj.kind))
            })?;
            obj.changed.notify_all();
            Ok(Reply::Item(Some(item)))
        }
        Op::LockAcquire(wait) => {
            let me = session.id;
            let got = obj.wait_for(session, wait, |state| match state {
                State::Lock { holder, died } if holder.is_none() => {
                    *holder = Some(me);
                    Some(Ok(std::mem::take(died)))
                }
                State::Lock { .. } => None,
                _ => Some(Err(())),
            })?;
            let died = got.map_err(|()| {
                Failure::Misuse(format!("LockAcquire is not an operation of a {}", obj.kind))
            })?;
            session.held.push(obj.clone());
            Ok(Reply::Acquired(died))
        }
        Op::EventWait(wait) => {
            let got = obj.wait_for(session, wait, |state| match state {
                State::Event(true) => Some(Ok(())),
                State::Event(false) => None,
                _ => Some(Err(())),
            });
            match got {
                Ok(Ok(())) => Ok(Reply::Bool(true)),
                Err(Failure::Timeout) => Ok(Reply::Bool(false)),
                Err(f) => Err(f),
                Ok(Err(())) => Err(Failure::Misuse(format!(
                    "EventWait is not an operation of a {}",
                    obj.kind
                ))),
            }
        }
        op => {
            let mut state = obj.state();
            let (reply, notify) = immediate(&mut state, session, obj, op)?;
            drop(state);
            if notify {
                obj.changed.notify_all();
            }
            Ok(reply)
        }
    }
}

/// An operation that never waits; `true` when waiters must be woken.
fn immediate(
    state: &mut State,
    session: &mut Session<'_>,
    obj: &Arc<Object>,
    op: Op,
) -> Result<(Reply, bool), Failure> {
    let reply = match (state, op) {
        (State::Dict(m), Op::Len) => Reply::Len(m.len() as u64),
        (State::List(l), Op::Len) => Reply::Len(l.len() as u64),
        (State::Queue { items, .. }, Op::Len) => Reply::Len(items.len() as u64),
        (State::Namespace(n), Op::Len) => Reply::Len(n.len() as u64),
        (State::Dict(m), Op::Clear) => {
            m.clear();
            Reply::Done
        }
        (State::List(l), Op::Clear) => {
            l.clear();
            Reply::Done
        }
        (State::Queue { items, .. }, Op::Clear) => {
            items.clear();
            return Ok((Reply::Done, true));
        }
        (State::Dict(m), Op::DictGet(k)) => Reply::Item(m.get(&k).cloned()),
        (State::Dict(m), Op::DictInsert(k, v)) => Reply::Item(m.insert(k, v)),
        (State::Dict(m), Op::DictRemove(k)) => Reply::Item(m.remove(&k)),
        (State::Dict(m), Op::DictContains(k)) => Reply::Bool(m.get(&k).is_some()),
        (State::Dict(m), Op::DictSetDefault(k, v)) => match m.get(&k) {
            Some(old) => Reply::Item(Some(old.clone())),
            None => {
                m.insert(k, v.clone());
                Reply::Item(Some(v))
            }
        },
        (State::Dict(m), Op::DictKeys) => Reply::Items(m.iter().map(|(k, _)| k.clone()).collect()),
        (State::Dict(m), Op::DictValues) => {
            Reply::Items(m.iter().map(|(_, v)| v.clone()).collect())
        }
        (State::Dict(m), Op::DictItems) => {
            Reply::Pairs(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        (State::Dict(m), Op::DictUpdate(pairs)) => {
            for (k, v) in pairs {
                m.insert(k, v);
            }
            Reply::Done
        }
        (State::List(l), Op::ListPush(v)) => {
            l.push(v);
            Reply::Done
        }
        (State::List(l), Op::ListExtend(vs)) => {
            l.extend(vs);
            Reply::Done
        }
        (State::List(l), Op::ListGet(i)) => {
            Reply::Item(position(i, l.len(), false).map(|at| l[at].clone()))
        }
        (State::List(l), Op::ListSet(i, v)) => {
            let at = position(i, l.len(), false).ok_or_else(|| out_of_range(i, l.len()))?;
            l[at] = v;
            Reply::Done
        }
        (State::List(l), Op::ListInsert(i, v)) => {
            // Python's insert clamps the index instead of failing.
            let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
            let at = if i < 0 { (len + i).max(0) } else { i.min(len) };
            l.insert(at as usize, v);
            Reply::Done
        }
        (State::List(l), Op::ListPop(i)) => match i {
            None => Reply::Item(l.pop()),
            Some(i) => {
                let at = position(i, l.len(), false).ok_or_else(|| out_of_range(i, l.len()))?;
                Reply::Item(Some(l.remove(at)))
            }
        },
        (State::List(l), Op::ListRemove(v)) => match l.iter().position(|x| *x == v) {
            Some(at) => {
                l.remove(at);
                Reply::Bool(true)
            }
            None => Reply::Bool(false),
        },
        (State::List(l), Op::ListIndex(v)) => match l.iter().position(|x| *x == v) {
            Some(at) => Reply::Len(at as u64),
            None => Reply::Item(None),
        },
        (State::List(l), Op::ListAll) => Reply::Items(l.clone()),
        (State::Namespace(n), Op::NsGet(name)) => match n.get(&name) {
            None => Reply::Item(None),
            Some((types, type_name, v)) => Reply::Attr(*types, type_name.clone(), v.clone()),
        },
        (State::Namespace(n), Op::NsSet(name, types, type_name, v)) => {
            n.insert(name, (types, type_name, v));
            Reply::Done
        }
        (State::Namespace(n), Op::NsRemove(name)) => Reply::Bool(n.remove(&name).is_some()),
        (State::Namespace(n), Op::NsNames) => Reply::Names(n.keys().cloned().collect()),
        (State::Lock { holder, .. }, Op::LockRelease) => {
            if *holder != Some(session.id) {
                return Err(Failure::Misuse(
                    "release of a lock this connection does not hold".into(),
                ));
            }
            *holder = None;
            session.held.retain(|h| !Arc::ptr_eq(h, obj));
            return Ok((Reply::Done, true));
        }
        (State::Event(e), Op::EventSet) => {
            *e = true;
            return Ok((Reply::Done, true));
        }
        (State::Event(e), Op::EventClear) => {
            *e = false;
            Reply::Done
        }
        (State::Event(e), Op::EventIsSet) => Reply::Bool(*e),
        (State::Value(v), Op::ValueGet) => Reply::Item(Some(v.clone())),
        (State::Value(v), Op::ValueSet(new)) => {
            *v = new;
            Reply::Done
        }
        (State::Value(v), Op::ValueSwap(new)) => Reply::Item(Some(std::mem::replace(v, new))),
        (State::Custom(c), Op::Call(req)) => Reply::Item(Some(c.call(&req.0)?)),
        (_, op) => return Err(wrong(&op, obj)),
    };
    Ok((reply, false))
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn python_index_rules() {
        assert_eq!(position(0, 3, false), Some(0));
        assert_eq!(position(-1, 3, false), Some(2));
        assert_eq!(position(-3, 3, false), Some(0));
        assert_eq!(position(-4, 3, false), None);
        assert_eq!(position(3, 3, false), None);
        assert_eq!(position(3, 3, true), Some(3));
        assert_eq!(position(0, 0, false), None);
        assert_eq!(position(i64::MIN, 3, false), None);
    }
}
