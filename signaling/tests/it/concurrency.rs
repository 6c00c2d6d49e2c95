//! Capacity holds under concurrent admissions from many threads.

use signaling::{Admission, AdmitError, Hub, Role, SignalingConfig};
use std::sync::{Arc, Barrier};

#[test]
fn concurrent_admissions_never_exceed_capacity() {
    const CAPACITY: u32 = 10;
    const THREADS: usize = 8;
    const PER_THREAD: usize = 10;
    let hub = Hub::new(SignalingConfig::default());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let hub = hub.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut kept = Vec::new();
                let mut full = 0;
                for i in 0..PER_THREAD {
                    let id = format!("t{t}-{i}");
                    let admission = Admission {
                        room_id: 1,
                        client_id: id.clone(),
                        identity: id.clone(),
                        role: if i == 0 { Role::Host } else { Role::Attendee },
                        seat_key: id,
                        capacity: CAPACITY,
                    };
                    match hub.try_admit(admission) {
                        Ok(admitted) => kept.push(admitted),
                        Err(AdmitError::RoomFull { .. }) => full += 1,
                        Err(other) => panic!("unexpected refusal {other:?}"),
                    }
                }
                (kept, full)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let admitted: usize = results.iter().map(|(kept, _)| kept.len()).sum();
    let refused: usize = results.iter().map(|(_, full)| *full).sum();
    let occupancy = hub.occupancy(1).unwrap();
    assert_eq!(occupancy.attendees, CAPACITY);
    assert_eq!(occupancy.hosts, THREADS as u32, "hosts are never refused");
    assert_eq!(admitted, CAPACITY as usize + THREADS);
    assert_eq!(refused, THREADS * PER_THREAD - admitted);
    assert_eq!(hub.stats_snapshot().peers, admitted as u64);
    drop(results);
    assert_eq!(hub.stats_snapshot().peers, 0);
    assert!(hub.occupancy(1).is_none());
}
