//! The errors of [`Connection`](crate::Connection) and the queues, in
//! crossbeam-channel's style: one small enum per operation, and a value
//! that could not be delivered comes back inside the error.

use std::fmt;

/// Why a message could not be encoded, decoded or moved: the detail behind
/// the `Failed` variants.
#[derive(Clone, PartialEq, Eq)]
pub struct Fault {
    codec: bool,
    message: String,
}

impl Fault {
    pub(crate) fn codec(message: impl Into<String>) -> Fault {
        Fault {
            codec: true,
            message: message.into(),
        }
    }

    pub(crate) fn broken(message: impl Into<String>) -> Fault {
        Fault {
            codec: false,
            message: message.into(),
        }
    }

    /// The one message could not be encoded or decoded (a wrong type,
    /// garbage bytes, an unsendable handle); the channel still works.
    pub fn is_codec(&self) -> bool {
        self.codec
    }

    /// The channel itself failed (an OS error, corrupted shared state).
    pub fn is_broken(&self) -> bool {
        !self.codec
    }

    /// The detail, as text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fault({:?})", self.message)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {}

macro_rules! value_error {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $text:literal ),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(PartialEq, Eq, Clone)]
        pub enum $name<T> {
            $( $(#[$vdoc])* $variant(T), )*
            /// The value could not be sent; see the [`Fault`].
            Failed(T, Fault),
        }

        impl<T> $name<T> {
            /// The value that was not delivered.
            pub fn into_inner(self) -> T {
                match self {
                    $( $name::$variant(v) => v, )*
                    $name::Failed(v, _) => v,
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str(concat!(stringify!($name), "::", stringify!($variant), "(..)")), )*
                    $name::Failed(_, e) => write!(f, "{}::Failed(.., {e:?})", stringify!($name)),
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant(_) => f.write_str($text), )*
                    $name::Failed(_, e) => write!(f, "sending failed: {e}"),
                }
            }
        }

        impl<T> std::error::Error for $name<T> {}
    };
}

value_error! {
    /// The error of [`Connection::send`](crate::Connection::send) and
    /// [`Queue::put`](crate::Queue::put).
    SendError {
        /// The peer is gone, or this handle was closed.
        Disconnected => "sending on a closed channel",
    }
}

value_error! {
    /// The error of [`Queue::try_put`](crate::Queue::try_put).
    TryPutError {
        /// The queue is full now.
        Full => "putting into a full queue",
        /// This handle was closed.
        Closed => "putting into a closed queue",
    }
}

value_error! {
    /// The error of [`Queue::put_timeout`](crate::Queue::put_timeout).
    PutTimeoutError {
        /// The queue stayed full until the deadline.
        Timeout => "timed out putting into a full queue",
        /// This handle was closed.
        Closed => "putting into a closed queue",
    }
}

macro_rules! plain_error {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $text:literal ),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, PartialEq, Eq, Clone)]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// A message was taken but could not be decoded (it is lost), or
            /// the channel failed; see the [`Fault`].
            Failed(Fault),
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($text), )*
                    $name::Failed(e) => write!(f, "receiving failed: {e}"),
                }
            }
        }

        impl std::error::Error for $name {}
    };
}

plain_error! {
    /// The error of [`Connection::recv`](crate::Connection::recv) and
    /// [`Queue::get`](crate::Queue::get).
    RecvError {
        /// The peer is gone and every message it sent has been received, or
        /// this handle was closed.
        Disconnected => "receiving on a closed channel",
    }
}

plain_error! {
    /// The error of [`Connection::try_recv`](crate::Connection::try_recv)
    /// and [`Queue::try_get`](crate::Queue::try_get).
    TryRecvError {
        /// Nothing to receive now.
        Empty => "receiving on an empty channel",
        /// As [`RecvError::Disconnected`].
        Disconnected => "receiving on a closed channel",
    }
}

plain_error! {
    /// The error of [`Connection::recv_timeout`](crate::Connection::recv_timeout)
    /// and [`Queue::get_timeout`](crate::Queue::get_timeout).
    RecvTimeoutError {
        /// Nothing arrived before the deadline.
        Timeout => "timed out waiting on a channel",
        /// As [`RecvError::Disconnected`].
        Disconnected => "receiving on a closed channel",
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Failed(f) => TryRecvError::Failed(f),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Failed(f) => RecvTimeoutError::Failed(f),
        }
    }
}
