use super::*;
use crate::connection::Outbound;

fn settings() -> Settings {
    Settings {
        max_presence_members: 2,
        subscription_count: true,
        cache_ttl: Duration::from_secs(60),
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

fn member(id: &str) -> Option<(UserId, Option<Arc<RawValue>>)> {
    Some((UserId::parse(id, 200).unwrap(), None))
}

#[test]
fn occupied_vacated_and_duplicates() {
    let reg = Registry::new(settings(), FanOut::inline());
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
    let reg = Registry::new(settings(), FanOut::inline());
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
    let reg = Registry::new(settings(), FanOut::inline());
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
