use super::*;
use crate::connection::Outbound;

fn settings() -> Settings {
    Settings {
        max_presence_members: 2,
        subscription_count: true,
        cache_ttl: Duration::from_secs(60),
        clustered: false,
    }
}

fn conn() -> (ConnectionHandle, Outbound) {
    ConnectionHandle::new(SocketId::generate(), 64)
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse(s, 200).unwrap()
}

fn drain(rx: &mut Outbound) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(f) = rx.try_recv() {
        out.push(f.to_string());
    }
    out
}

/// Records every reported change as text, in order.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl Recorder {
    fn shared() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Reporter for Recorder {
    fn report(&self, channel: &ChannelName, change: Change<'_>) {
        self.0.lock().unwrap().push(format!("{channel} {change:?}"));
    }
}

fn member(id: &str) -> Option<(UserId, Option<Arc<RawValue>>)> {
    Some((UserId::parse(id, 200).unwrap(), None))
}

#[test]
fn occupied_vacated_and_duplicates() {
    let reg = Registry::new(settings(), FanOut::inline(), Recorder::shared());
    let (a, mut arx) = conn();
    let ch = name("my-channel");
    let s = reg
        .subscribe(
            &ch,
            Joining {
                handle: &a,
                member: None,
            },
        )
        .unwrap();
    assert!(s.occupied);
    assert_eq!(s.count, Some(1));
    assert_eq!(
        reg.subscribe(
            &ch,
            Joining {
                handle: &a,
                member: None
            }
        ),
        Err(SubscribeError::Existing("my-channel".into()))
    );
    let frames = drain(&mut arx);
    assert!(frames[0].starts_with(
        r#"{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"my-channel"}"#
    ));
    assert!(frames[1].contains("subscription_count"));
    let u = reg.unsubscribe(&ch, a.socket_id()).unwrap();
    assert!(u.vacated);
    assert_eq!(reg.unsubscribe(&ch, a.socket_id()), None);
    assert!(reg.occupied("").is_empty());
}

#[test]
fn presence_members_are_users_not_connections() {
    let reg = Registry::new(settings(), FanOut::inline(), Recorder::shared());
    let ch = name("presence-room");
    let (a1, mut r1) = conn();
    let (a2, _r2) = conn();
    let (b, mut rb) = conn();
    let (c, _rc) = conn();
    assert_eq!(
        reg.subscribe(
            &ch,
            Joining {
                handle: &a1,
                member: member("a")
            }
        )
        .unwrap()
        .member_added
        .unwrap()
        .as_str(),
        "a"
    );
    assert_eq!(
        reg.subscribe(
            &ch,
            Joining {
                handle: &a2,
                member: member("a")
            }
        )
        .unwrap()
        .member_added,
        None
    );
    assert!(reg
        .subscribe(
            &ch,
            Joining {
                handle: &b,
                member: member("b")
            }
        )
        .is_ok());
    assert!(matches!(
        reg.subscribe(
            &ch,
            Joining {
                handle: &c,
                member: member("c")
            }
        ),
        Err(SubscribeError::PresenceFull { max: 2, .. })
    ));
    let joined = drain(&mut rb);
    assert!(joined[0].contains(r#"\"count\":2"#), "{joined:?}");
    assert!(drain(&mut r1)
        .iter()
        .any(|f| f.contains("member_added") && f.contains(r#"\"user_id\":\"b\""#)));
    assert_eq!(reg.info(&ch).user_count, 2);
    assert_eq!(reg.info(&ch).subscription_count, 3);
    assert_eq!(
        reg.unsubscribe(&ch, a1.socket_id()).unwrap().member_removed,
        None
    );
    assert_eq!(
        reg.unsubscribe(&ch, a2.socket_id())
            .unwrap()
            .member_removed
            .unwrap()
            .as_str(),
        "a"
    );
    assert!(drain(&mut rb).iter().any(|f| f.contains("member_removed")));
}

#[test]
fn cache_is_sent_after_succeeded_or_a_miss_is_reported_once() {
    let reg = Registry::new(settings(), FanOut::inline(), Recorder::shared());
    let ch = name("cache-x");
    let (a, mut arx) = conn();
    let (b, mut brx) = conn();
    assert!(
        reg.subscribe(
            &ch,
            Joining {
                handle: &a,
                member: None
            }
        )
        .unwrap()
        .cache_miss
    );
    assert!(
        !reg.subscribe(
            &ch,
            Joining {
                handle: &b,
                member: None
            }
        )
        .unwrap()
        .cache_miss
    );
    assert!(drain(&mut arx)[1].contains("pusher:cache_miss"));
    drain(&mut brx);
    let frame: Frame = r#"{"event":"e","channel":"cache-x","data":"1"}"#.into();
    let cached = CachedEvent {
        event: "e".into(),
        data: "1".into(),
        frame: frame.clone(),
        stored: Instant::now(),
    };
    assert_eq!(
        reg.publish(&ch, &frame, Some(b.socket_id()), Some(cached)),
        1
    );
    let (c, mut crx) = conn();
    reg.subscribe(
        &ch,
        Joining {
            handle: &c,
            member: None,
        },
    )
    .unwrap();
    let got = drain(&mut crx);
    assert!(got[0].contains("subscription_succeeded"));
    assert_eq!(got[1], frame.to_string());
    assert_eq!(&*reg.info(&ch).cache.unwrap().0.data, "1");
}

#[test]
fn changes_are_reported_in_order() {
    let recorder = Recorder::shared();
    let reg = Registry::new(settings(), FanOut::inline(), recorder.clone());
    let ch = name("presence-r");
    let (a, _arx) = conn();
    let (b, _brx) = conn();
    for (handle, id) in [(&a, "u1"), (&b, "u2")] {
        let joining = Joining {
            handle,
            member: member(id),
        };
        reg.subscribe(&ch, joining).unwrap();
    }
    reg.unsubscribe(&ch, a.socket_id());
    reg.unsubscribe(&ch, b.socket_id());
    assert_eq!(
        recorder.take(),
        [
            "presence-r Occupied",
            "presence-r MemberAdded(UserId(\"u1\"))",
            "presence-r MemberAdded(UserId(\"u2\"))",
            "presence-r MemberRemoved(UserId(\"u1\"))",
            "presence-r MemberRemoved(UserId(\"u2\"))",
            "presence-r Vacated",
        ]
    );
}

/// Review finding 10: occupied/vacated of one channel, decided on several threads at once, are
/// reported in the order they happened: they alternate, starting with occupied.
#[test]
fn racing_subscribers_report_occupied_and_vacated_alternately() {
    let recorder = Recorder::shared();
    let reg = Arc::new(Registry::new(
        settings(),
        FanOut::inline(),
        recorder.clone(),
    ));
    let ch = name("flicker");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (reg, ch) = (reg.clone(), ch.clone());
            std::thread::spawn(move || {
                let (handle, _rx) = ConnectionHandle::new(SocketId::generate(), 1 << 16);
                for _ in 0..2000 {
                    let joining = Joining {
                        handle: &handle,
                        member: None,
                    };
                    reg.subscribe(&ch, joining).unwrap();
                    reg.unsubscribe(&ch, handle.socket_id());
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let transitions: Vec<String> = recorder
        .take()
        .into_iter()
        .filter(|c| c.ends_with("Occupied") || c.ends_with("Vacated"))
        .collect();
    assert!(!transitions.is_empty());
    for (i, pair) in transitions.chunks(2).enumerate() {
        assert_eq!(pair, ["flicker Occupied", "flicker Vacated"], "pair {i}");
    }
}

/// Review finding 12: while nothing is cached, a miss is reported again after a minute.
#[tokio::test(start_paused = true)]
async fn a_cache_miss_is_reported_again_after_a_minute() {
    let recorder = Recorder::shared();
    let reg = Registry::new(settings(), FanOut::inline(), recorder.clone());
    let ch = name("cache-empty");
    let (keeper, _krx) = conn();
    let joining = Joining {
        handle: &keeper,
        member: None,
    };
    assert!(reg.subscribe(&ch, joining).unwrap().cache_miss);
    let misses = |reg: &Registry| {
        let (c, _rx) = conn();
        let joining = Joining {
            handle: &c,
            member: None,
        };
        reg.subscribe(&ch, joining).unwrap().cache_miss
    };
    assert!(!misses(&reg), "de-duplicated");
    tokio::time::advance(MISS_REPORTED_AGAIN_AFTER).await;
    assert!(misses(&reg), "reported again while still empty");
    assert!(!misses(&reg));
    let count = recorder
        .take()
        .iter()
        .filter(|c| c.ends_with("CacheMiss"))
        .count();
    assert_eq!(count, 2);
}

/// A cluster node keeps the newest of the cluster's counts, whatever order they arrive in: an
/// older one (a lower number) is neither sent nor reported; an unnumbered one always counts.
#[test]
fn a_cluster_count_older_than_the_last_one_is_dropped() {
    let clustered = Settings {
        clustered: true,
        ..settings()
    };
    let reg = Registry::new(clustered, FanOut::inline(), Recorder::shared());
    let (a, mut arx) = conn();
    let ch = name("room");
    let joining = Joining {
        handle: &a,
        member: None,
    };
    reg.subscribe(&ch, joining).unwrap();
    drain(&mut arx);
    let sent = |arx: &mut Outbound| -> Vec<String> {
        drain(arx)
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                v["data"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert!(reg.count_is(&ch, 3, 7, true));
    assert!(!reg.count_is(&ch, 2, 5, true), "older than 7");
    assert!(!reg.count_is(&ch, 2, 7, false), "not newer than 7");
    assert!(reg.count_is(&ch, 4, 9, false));
    assert!(reg.count_is(&ch, 1, 0, false), "unnumbered");
    assert_eq!(
        sent(&mut arx),
        [
            r#"{"subscription_count":3}"#,
            r#"{"subscription_count":4}"#,
            r#"{"subscription_count":1}"#
        ]
    );
}
