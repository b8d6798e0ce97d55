use super::*;
use crate::sys;
use std::time::Duration;

fn double(x: u32) -> u32 {
    x * 2
}

fn methods() -> [StartMethod; 2] {
    [StartMethod::ForkServer, StartMethod::Spawn]
}

#[test]
fn smoke() {
    for m in methods() {
        let mut p = Process::builder()
            .start_method(m)
            .spawn(double, 21)
            .unwrap();
        assert_eq!(p.join().unwrap(), 42, "{m:?}");
        assert!(!p.is_alive());
        assert_eq!(p.exitcode(), Some(ExitStatus::Code(0)));
        assert!(p.join().unwrap_err().is_already_joined());
    }
}

#[test]
fn fork_is_refused_in_a_threaded_test_harness() {
    let _other = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(500)));
    let err = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(double, 1)
        .unwrap_err();
    assert!(err.is_not_single_threaded(), "{err}");
}

fn fork_inside(x: u32) -> u32 {
    let captured = 100;
    let mut p = Process::fork(move || x + captured).unwrap();
    let a = p.join().unwrap();
    let mut q = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(double, a)
        .unwrap();
    q.join().unwrap()
}

#[test]
fn fork_works_in_a_single_threaded_child() {
    let mut p = Process::spawn(fork_inside, 1).unwrap();
    assert_eq!(p.join().unwrap(), 202);
}

#[test]
fn forkserver_is_shared_and_alive() {
    let mut p = Process::spawn(double, 1).unwrap();
    p.join().unwrap();
    let pid = forkserver::server_pid().expect("a fork server runs after a spawn");
    assert!(sys::proc::kill(pid, 0).is_ok());
}

/// A job whose trampoline signature does not match: the child must refuse it.
#[test]
fn signature_mismatch_is_refused_before_any_jump() {
    let builder = Process::builder();
    let wrong_sig = identity::signature::<u64, u64>();
    let tramp = identity::trampoline_for::<u32, u32>() as usize;
    let inner = builder
        .spawn_raw_for_test(tramp, double as fn(u32) -> u32 as usize, wrong_sig, &5u32)
        .unwrap();
    let mut p: Process<u32> = Process::from_inner(inner);
    let err = p.join().unwrap_err();
    assert!(err.is_function_mismatch(), "{err}");
    assert!(err.to_string().contains("type signature mismatch"), "{err}");
    assert_eq!(p.exitcode(), Some(ExitStatus::Code(child::EXIT_REFUSED)));
}

#[test]
fn bad_environment_is_refused_before_any_process_exists() {
    for b in [
        Process::builder().env("A=B", "x"),
        Process::builder().env("", "x"),
        Process::builder().env("OK", "nul\0inside"),
        Process::builder().env_remove("X\0Y"),
        Process::builder().current_dir("/tmp/\0"),
    ] {
        let err = b.spawn(double, 1).unwrap_err();
        assert!(err.is_start_failure(), "{err}");
        assert!(err.pid().is_none(), "no child was created: {err}");
    }
}

#[test]
fn environment_and_directory_reach_the_child() {
    fn look(_: ()) -> (Option<String>, Option<String>, String) {
        let cwd = std::env::current_dir().unwrap().display().to_string();
        (
            std::env::var("MP_TEST_SET").ok(),
            std::env::var("HOME").ok(),
            cwd,
        )
    }
    for m in [StartMethod::ForkServer, StartMethod::Spawn] {
        let mut p = Process::builder()
            .start_method(m)
            .env("MP_TEST_SET", "yes")
            .env_remove("HOME")
            .current_dir("/")
            .spawn(look, ())
            .unwrap();
        assert_eq!(
            p.join_timeout(Duration::from_secs(30)).unwrap(),
            (Some("yes".into()), None, "/".into()),
            "{m:?}"
        );
    }
}
