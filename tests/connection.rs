//! `connection::Listener` / `Client` across processes: children started
//! with `Process::spawn` connect to the parent's listener, one with the
//! right authkey, one with a wrong one, over TCP and over a Unix socket.

use multiproc::Process;
use multiproc::connection::{Address, Client, Listener};
use std::thread;
use std::time::Duration;

const KEY: &[u8] = b"parent and child share this";
const DEADLINE: Duration = Duration::from_secs(30);

/// In the child: connects with `key`, sends its pid, and returns the
/// parent's reply, or the error as text (`auth:` first for an
/// authentication failure).
fn child_connect((address, key): (String, Vec<u8>)) -> Result<String, String> {
    let address: Address = address.parse().map_err(|e| format!("{e}"))?;
    let mut ch = Client::connect_timeout(&address, &key, Duration::from_secs(10)).map_err(|e| {
        if e.is_authentication_failure() {
            format!("auth: {e}")
        } else {
            e.to_string()
        }
    })?;
    ch.send(&std::process::id()).map_err(|e| e.to_string())?;
    ch.recv_timeout::<String>(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

fn run(address: Address) {
    let listener = Listener::bind(address, KEY).unwrap();
    let text = listener.address().to_string();
    let mut bad = Process::spawn(child_connect, (text.clone(), b"not the key".to_vec())).unwrap();
    // Serve the bad child first: its accept fails, for it alone.
    let err = listener.accept_timeout(DEADLINE).unwrap_err();
    assert!(err.is_authentication_failure(), "{err}");
    let bad = bad.join_timeout(DEADLINE).unwrap();
    assert!(
        bad.as_ref().is_err_and(|e| e.starts_with("auth:")),
        "{bad:?}"
    );

    let mut good = Process::spawn(child_connect, (text, KEY.to_vec())).unwrap();
    let pid = good.pid();
    let server = thread::spawn(move || {
        let mut ch = listener.accept_timeout(DEADLINE).unwrap();
        let child_pid: u32 = ch.recv_timeout(DEADLINE).unwrap();
        ch.send(&format!("hello, {child_pid}")).unwrap();
        child_pid
    });
    let reply = good.join_timeout(DEADLINE).unwrap();
    assert_eq!(server.join().unwrap(), pid);
    assert_eq!(reply, Ok(format!("hello, {pid}")));
}

#[test]
fn child_connects_over_tcp() {
    run("127.0.0.1:0".parse().unwrap());
}

#[test]
fn child_connects_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("mp-conn-proc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    run(Address::Unix(dir.join("parent.sock")));
    std::fs::remove_dir_all(&dir).unwrap();
}
