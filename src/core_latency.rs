//! How far apart two of our threads run: the round trip of one cache line between them.
//! On the 2-core KVM machine `make bench` runs on it is ~60-80 ns while the VM's two cores
//! share a die (and its L3 cache) and ~310-360 ns while they sit on different dies, and the
//! host moves them between the two every few tens of seconds. nmt's 4-layer 512-unit training
//! step is 7-9 % slower apart, and PyTorch's moved by up to ~10 % (either way), so `make bench`
//! records this figure before every run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Spins before yielding the core: on a single core the other thread must get to run.
const SPINS_BEFORE_YIELD: u32 = 4096;

/// Waits until `flag` holds `want`.
fn wait_for(flag: &AtomicU32, want: u32) {
    let mut spins = 0;
    while flag.load(Ordering::Acquire) != want {
        spins += 1;
        if spins % SPINS_BEFORE_YIELD == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Pins the calling thread to the `i`-th CPU this process may run on, if there is one.
/// Unpinned, the two threads sometimes started on one core and handed over by yielding it
/// (0.8-2.4 us a round trip).
#[cfg(target_os = "linux")]
fn pin_to(i: usize) {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain bits (all zeros is the empty set); both calls get its size
    // and a valid pointer, and only change this thread's affinity.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        let cpus = 0..libc::CPU_SETSIZE as usize;
        if let Some(cpu) = cpus.filter(|&c| libc::CPU_ISSET(c, &allowed)).nth(i) {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            libc::sched_setaffinity(0, size, &one);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_: usize) {}

/// The mean round trip in ns of `trips` hand-overs of a flag between two threads on the
/// first two CPUs this process may run on (on Linux; elsewhere where the OS puts them).
pub fn round_trip_ns(trips: usize) -> f64 {
    // One hand-over starts the other thread, untimed; with none the timer would wait forever.
    let trips = trips.max(2);
    let flag = AtomicU32::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to(1);
            for _ in 0..trips {
                wait_for(&flag, 1);
                flag.store(0, Ordering::Release);
            }
        });
        let timer = s.spawn(|| {
            pin_to(0);
            // The first hand-over also waits for the other thread to start: not timed.
            flag.store(1, Ordering::Release);
            wait_for(&flag, 0);
            let started = Instant::now();
            for _ in 1..trips {
                flag.store(1, Ordering::Release);
                wait_for(&flag, 0);
            }
            started.elapsed().as_secs_f64() * 1e9 / (trips - 1) as f64
        });
        timer.join().expect("the timing thread does not panic")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_takes_some_time_and_ends() {
        let ns = round_trip_ns(1000);
        assert!(ns > 0.0 && ns.is_finite(), "{ns}");
        // Too few trips to time still ends (it used to wait forever at 0).
        for trips in [0, 1] {
            assert!(round_trip_ns(trips).is_finite());
        }
    }
}
