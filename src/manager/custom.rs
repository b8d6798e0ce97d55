//! Registered types: [`Managed`], Python's `BaseManager.register`.
//!
//! A registered type lives in the server; proxies send it requests. The
//! server process runs the same executable as the program that started it,
//! so a registration is sent to it as the offset of a monomorphised
//! constructor from an anchor (the function identity the processes use,
//! see `process::identity`), with a hash of the type's signature that the
//! constructor checks before it builds anything.

use super::protocol::{Blob, Failure};
use crate::process::{address_at, last_panic_details, offset_of, panic_message, signature};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A type whose values live in a manager's server and are used through a
/// [`Proxy`](super::Proxy): Python's `BaseManager.register(typeid, ...)`.
///
/// Register it on the [builder](super::ManagerBuilder::register) of the
/// manager that serves it; make values with
/// [`Manager::create`](super::Manager::create). Every request runs
/// [`handle`](Managed::handle) on the server, one request at a time per
/// object, so a method never sees a half-done update from another client.
/// `handle` should not block: it holds the object while it runs.
///
/// A panic in `handle` fails that request with [`Error::is_panic`] (its
/// message and location); the object stays, as the panic left it.
///
/// [`Error::is_panic`]: crate::Error::is_panic
///
/// # Examples
/// ```
/// use multiproc::manager::{Managed, Manager};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default)]
/// struct Counter(i64);
///
/// #[derive(Serialize, Deserialize)]
/// enum Op { Add(i64), Get }
///
/// impl Managed for Counter {
///     const TYPE_ID: &'static str = "Counter";
///     type Init = i64;
///     type Request = Op;
///     type Response = i64;
///     fn new(start: i64) -> Counter {
///         Counter(start)
///     }
///     fn handle(&mut self, op: Op) -> i64 {
///         if let Op::Add(n) = op {
///             self.0 += n;
///         }
///         self.0
///     }
/// }
///
/// let manager = Manager::builder().register::<Counter>().start()?;
/// let counter = manager.create::<Counter>(10)?;
/// assert_eq!(counter.call(Op::Add(5))?, 15);
/// assert_eq!(counter.call(Op::Get)?, 15);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub trait Managed: Send + 'static {
    /// The name the type is registered under (Python's `typeid`): a
    /// program that [connects](super::Manager::connect) to a server finds
    /// the type by this name.
    const TYPE_ID: &'static str;
    /// What a new value is made from.
    type Init: Serialize + DeserializeOwned;
    /// A request (typically an enum of the type's methods).
    type Request: Serialize + DeserializeOwned;
    /// The answer to a request.
    type Response: Serialize + DeserializeOwned;
    /// Makes a value, in the server.
    fn new(init: Self::Init) -> Self;
    /// Serves one request, in the server.
    fn handle(&mut self, request: Self::Request) -> Self::Response;
}

/// A registered value in the server, with its types erased.
pub(crate) trait Erased: Send {
    fn call(&mut self, request: &[u8]) -> Result<Blob, Failure>;
}

struct Holder<T>(T);

impl<T: Managed> Erased for Holder<T> {
    fn call(&mut self, request: &[u8]) -> Result<Blob, Failure> {
        let request: T::Request = crate::wire::decode_plain(request).map_err(|e| {
            Failure::Decode(format!(
                "a request for `{}` does not decode: {e}",
                T::TYPE_ID
            ))
        })?;
        let response = catch(|| self.0.handle(request))?;
        postcard::to_allocvec(&response)
            .map(Blob)
            .map_err(|e| Failure::Misuse(format!("cannot encode the response: {e}")))
    }
}

fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Failure::Panicked {
        pid: std::process::id(),
        message: panic_message(&*payload),
        location: last_panic_details().0,
    })
}

/// Builds a value from its encoded `Init`, after checking that the caller
/// meant this very type (`sig`).
pub(crate) type Construct = fn(sig: u64, init: &[u8]) -> Result<Box<dyn Erased>, Failure>;

fn construct<T: Managed>(sig: u64, init: &[u8]) -> Result<Box<dyn Erased>, Failure> {
    if sig != type_signature::<T>() {
        return Err(Failure::Misuse(format!(
            "the registration of `{}` does not match this server's type",
            T::TYPE_ID
        )));
    }
    let init: T::Init = crate::wire::decode_plain(init).map_err(|e| {
        Failure::Decode(format!(
            "the initial value of a `{}` does not decode: {e}",
            T::TYPE_ID
        ))
    })?;
    let value = catch(|| T::new(init))?;
    Ok(Box::new(Holder(value)))
}

/// The signature of a registered type: its name and the names of its
/// three associated types.
pub(crate) fn type_signature<T: Managed>() -> u64 {
    signature::<(T, T::Init), (T::Request, T::Response)>()
}

/// The names a proxy of `T` records, for error messages and checks.
pub(crate) fn type_names<T: Managed>() -> String {
    std::any::type_name::<T>().to_owned()
}

/// One registration as it travels to the server process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) type_id: String,
    pub(crate) signature: u64,
    /// The constructor's offset from the anchor.
    pub(crate) offset: i64,
}

impl Registration {
    pub(crate) fn of<T: Managed>() -> Registration {
        Registration {
            type_id: T::TYPE_ID.to_owned(),
            signature: type_signature::<T>(),
            offset: offset_of(construct::<T> as Construct as usize),
        }
    }
}

/// The server's registered types, by `TYPE_ID`.
#[derive(Default)]
pub(crate) struct Registry {
    types: HashMap<String, (u64, Construct)>,
}

impl Registry {
    /// The registry of the server process. Every offset came from
    /// [`Registration::of`] in the parent, which runs the same executable
    /// (the process start checked it).
    pub(crate) fn from_registrations(regs: &[Registration]) -> Registry {
        let mut types = HashMap::new();
        for r in regs {
            // SAFETY: [1] `r.offset` was computed by `Registration::of` as
            // the offset of `construct::<T> as Construct` in this same
            // executable (the start of this process checked the executable
            // identity), so `address_at` gives the address of that function
            // here; [2] fn pointers and usize have the same size; [3] the
            // function checks the signature of the type it builds before it
            // does anything else.
            let f = unsafe { std::mem::transmute::<usize, Construct>(address_at(r.offset)) };
            types.insert(r.type_id.clone(), (r.signature, f));
        }
        Registry { types }
    }

    /// Builds a `type_id` for a client whose type has signature `sig`.
    pub(crate) fn build(
        &self,
        type_id: &str,
        sig: u64,
        init: &[u8],
    ) -> Result<Box<dyn Erased>, Failure> {
        match self.types.get(type_id) {
            Some((ours, f)) if *ours == sig => f(sig, init),
            Some(_) => Err(Failure::Misuse(format!(
                "the client's type `{type_id}` is not the one the manager registered \
                 under that name (its request, response or init types differ)"
            ))),
            None => Err(Failure::Misuse(format!(
                "the manager has no type registered as `{type_id}`"
            ))),
        }
    }
}
