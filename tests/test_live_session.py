"""The live session's bookkeeping, deterministic: a fake clock, audio placed by hand."""

import asyncio

import av
import numpy as np
import pytest

from conftest import track, track_path
from livecoach.analyze import analyze_tracks
from livecoach.engine import Engine
from livecoach.live.indicators import MAX_PENDING_EVENTS, IndicatorHub
from livecoach.live.session import ABSENT, CONNECTED, MUTED, LiveSession

PACKET = 320  # 20 ms at 16 kHz


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def play(session: LiveSession, clock: Clock, audio: dict[str, np.ndarray], skip=None, at: int = 0) -> None:
    """Both participants' audio in 20 ms packets, in step with the clock, from session sample ``at``."""
    n = max(a.size for a in audio.values())
    for pos in range(0, n, PACKET):
        clock.t = 1000.0 + (at + pos + PACKET) / 16000
        for role, a in audio.items():
            if skip and skip(role, pos):
                continue
            if pos < a.size:
                session.heard(role)
                session.place(role, at + pos, a[pos : pos + PACKET])
        if pos % 1600 == 0:
            session.tick()


def test_live_placement_gives_exactly_the_offline_segments():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    for role in ("coach", "client"):
        session.set_state(role, CONNECTED)
    play(session, clock, {r: track("bleed", r) for r in ("coach", "client")})
    session.engine.finish()
    offline = analyze_tracks(track_path("bleed", "coach"), track_path("bleed", "client"))
    live = session.engine.segments()
    assert live == {p: [(s.start, s.end) for s in segs] for p, segs in offline.timeline.segments.items()}


@pytest.mark.parametrize("lead", [1.0, 1.68, 1.77])
def test_audio_that_starts_later_in_the_session_gives_the_offline_segments(lead):
    """A call's audio starts a while after its session (the participants join, the connections
    come up): the figures are still those of ``livecoach analyze``, whatever the delay. On this
    hard excerpt (a quiet client under the coach's echo) the attribution's one-second blocks,
    counted from the session's start, moved the talk share by up to 2 points before they were
    counted from the first audio."""
    excerpt = slice(28 * 16000, 68 * 16000)
    audio = {r: track("quiet", r)[excerpt] for r in ("coach", "client")}
    offline = Engine(("coach", "client"))
    for role, a in audio.items():
        offline.push(role, a)
    offline.finish()

    clock = Clock()
    session = LiveSession("s", clock=clock)
    for role in ("coach", "client"):
        session.set_state(role, CONNECTED)
    start = round(lead * 16000)
    for t in range(0, start, 1600):  # nobody's audio yet: the clock runs on, absence is filled
        clock.t = 1000.0 + t / 16000
        session.tick()
    play(session, clock, audio, at=start)
    session.engine.finish()
    live = {p: [(round(a - lead, 2), round(b - lead, 2)) for a, b in segs] for p, segs in session.engine.segments().items()}
    assert live == {p: [(round(a, 2), round(b, 2)) for a, b in segs] for p, segs in offline.segments().items()}


def test_lost_packets_become_absence_and_keep_later_speech_in_place():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    for role in ("coach", "client"):
        session.set_state(role, CONNECTED)
    lost = lambda role, pos: role == "client" and 20 * 16000 <= pos < 21 * 16000  # noqa: E731
    play(session, clock, {r: track("clean", r) for r in ("coach", "client")}, skip=lost)
    session.engine.finish()
    full = LiveSession("t", clock=Clock())
    for role in ("coach", "client"):
        full.set_state(role, CONNECTED)
    play(full, Clock(), {r: track("clean", r) for r in ("coach", "client")})
    full.engine.finish()
    after = [s for s in full.engine.segments()["client"] if s[0] > 23.0]
    assert after and [s for s in session.engine.segments()["client"] if s[0] > 23.0] == after
    assert session.engine.segments()["coach"] == full.engine.segments()["coach"]


def test_a_muted_participant_never_talks_and_the_other_is_not_held_up():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    session.set_state("coach", CONNECTED)
    session.set_state("client", MUTED)
    play(session, clock, {r: track("clean", r) for r in ("coach", "client")})
    assert session.engine.segments()["client"] == []
    assert session.session_time == pytest.approx(track("clean", "coach").size / 16000, abs=0.05)
    assert session.engine.metrics().talk_time["coach"] > 30


def test_late_audio_is_dropped_and_counted():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    session.set_state("coach", CONNECTED)
    session.set_state("client", CONNECTED)
    tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220) * 3000).astype(np.int16)
    session.place("coach", 0, tone)
    session.place("client", 0, tone)
    session.place("client", 8000, tone[:4000])  # a burst that arrives after its time was filled
    assert session.dropped_seconds("client") == pytest.approx(0.25)
    assert session.received_seconds("client") == pytest.approx(1.0)


def test_the_clock_runs_on_when_nobody_sends_audio():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    clock.t += 5.0
    session.tick()
    assert session.session_time == pytest.approx(5.0, abs=0.011)
    session.set_state("coach", CONNECTED)  # connected but silent on the network: a stall
    sub = session.hub.subscribe()
    clock.t += 0.3
    session.tick()
    assert session.shown_state("coach") == "connected"
    clock.t += 2.7
    session.tick()
    assert session.session_time == pytest.approx(7.7, abs=0.011)  # it waits 0.3 s for them
    assert session.state("client") == ABSENT
    assert session.shown_state("coach") == "no-audio" and session.snapshot()["participants"]["coach"] == "no-audio"
    presence = [m for m in asyncio.run(sub.take()) if m["type"] == "presence"]
    assert [(m["participant"], m["state"]) for m in presence] == [("coach", "no-audio")]


def test_events_and_snapshots_carry_session_time_in_the_order_they_were_made():
    clock = Clock()
    session = LiveSession("s", clock=clock)
    sub = session.hub.subscribe(session.snapshot())
    session.set_state("coach", CONNECTED)
    session.set_state("client", CONNECTED)
    play(session, clock, {r: track("clean", r)[: 16000 * 12] for r in ("coach", "client")})
    session.hub.snapshot(session.snapshot())
    batch = asyncio.run(sub.take())
    kinds = [m["type"] for m in batch]
    # the first snapshot was out of date once the last was made: only the newest is left, last
    assert kinds.count("snapshot") == 1 and kinds[-1] == "snapshot"
    assert "speech" in kinds and "silence" in kinds and "presence" in kinds
    assert all("session_time" in m for m in batch)
    decided = [m["session_time"] for m in batch]
    assert decided == sorted(decided)  # never older state after newer
    starts = [m for m in batch if m["type"] == "speech" and m["state"] == "start"]
    assert all(0 < m["session_time"] - m["start"] <= 0.1 + 1e-6 for m in starts)


def test_a_reader_that_keeps_up_gets_every_event_and_the_latest_snapshot():
    hub = IndicatorHub()
    sub = hub.subscribe()
    for i in range(500):
        hub.event({"type": "speech", "n": i})
        hub.snapshot({"type": "snapshot", "n": i})
    batch = asyncio.run(sub.take())
    # events beyond the bound are dropped oldest first (and counted); one snapshot, the newest
    assert len(batch) == MAX_PENDING_EVENTS + 1
    assert batch[-1] == {"type": "snapshot", "n": 499}
    assert [m["n"] for m in batch[:-1]] == list(range(500 - MAX_PENDING_EVENTS, 500))
    assert sub.coalesced == 500 - MAX_PENDING_EVENTS


def test_a_reader_that_is_behind_gets_the_newest_snapshot_instead_of_a_backlog():
    hub = IndicatorHub()
    sub = hub.subscribe()
    sub.behind = True  # what deliver() sets while the last messages have not left
    for i in range(500):
        hub.event({"type": "speech", "n": i})
        hub.snapshot({"type": "snapshot", "n": i})
    hub.event({"type": "pong", "id": 1})  # an answer is never dropped
    hub.event({"type": "speech", "n": 500})
    batch = asyncio.run(sub.take())
    assert batch == [{"type": "snapshot", "n": 499}, {"type": "pong", "id": 1}, {"type": "speech", "n": 500}]
    assert sub.coalesced == 500


def test_the_decoded_frame_queue_keeps_the_newest_and_counts_what_it_dropped():
    import av

    from livecoach.live.tap import DropOldestQueue

    async def fill():
        q = DropOldestQueue(3)
        for i in range(10):
            frame = av.AudioFrame(format="s16", layout="mono", samples=960)
            frame.pts = i * 960
            await q.put(frame)
        await q.put(None)  # the end of the track is never lost
        return q, [q.get_nowait() for _ in range(q.qsize())]

    q, items = asyncio.run(fill())
    assert [f.pts if f is not None else None for f in items] == [8 * 960, 9 * 960, None]
    assert q.dropped_frames == 8 and q.dropped_samples == 8 * 960


def speak_alone(session: LiveSession, clock: Clock, coach_audio: np.ndarray) -> None:
    """The coach's audio in 100 ms steps, each followed by a tick of the session's loop."""
    for pos in range(0, coach_audio.size, 1600):
        clock.t = 1000.0 + (pos + 1600) / 16000
        session.heard("coach")
        session.place("coach", pos, coach_audio[pos : pos + 1600])
        session.tick()
        session.observe()


def test_a_nudge_reaches_the_coach_and_the_store_and_the_timeline_is_stored(tmp_path):
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    store.set_coach_settings("local", {"nudges": {"client_quiet": {"seconds": 10}, "wait": {"enabled": False}}})
    clock = Clock()
    session = LiveSession(sid, clock=clock, store=store)
    asyncio.run(session.exchange_with_store())  # what the running session does at once
    assert session.nudger.rules.client_quiet.seconds == 10
    sub = session.hub.subscribe()
    session.set_state("coach", CONNECTED)
    session.set_state("client", MUTED)  # there, but silent: quiet from the moment they joined
    speak_alone(session, clock, track("clean", "coach")[: 16000 * 15])

    nudges = [m for m in asyncio.run(sub.take()) if m["type"] == "nudge"]
    assert len(nudges) == 1
    sent = nudges[0]
    assert (sent["kind"], sent["text"]) == ("client_quiet", "Invite them in")
    assert 10.0 <= sent["session_time"] <= 10.3
    assert store.nudges(sid) == [{"id": sent["id"], "kind": "client_quiet", "text": "Invite them in",
                                  "session_time": sent["session_time"], "dismissed_at": None}]
    assert session.snapshot()["nudge"] == {k: sent[k] for k in ("id", "kind", "text", "session_time")}

    session.nudger.dismiss(sent["id"])  # the coach's dismissal, as the indicator stream hands it over
    assert session.snapshot()["nudge"] is None

    asyncio.run(session.stop())
    samples = store.indicator_samples(sid)
    assert [int(s.session_time) for s in samples] == list(range(0, 16))
    assert all(s.session_time - int(s.session_time) < 0.15 for s in samples)
    assert any(s.speaking == ["coach"] for s in samples) and any(s.current_silence > 0 for s in samples)
    assert {s.share_session for s in samples if s.share_session is not None} == {1.0}
    events = store.events(sid)
    speech = [e for e in events if e["kind"] == "speech"]
    assert speech and all(e["participant"] == "coach" and e["end"] > e["start"] for e in speech)
    assert any(e["kind"] == "silence" for e in events)
    assert {(e["participant"], e["state"]) for e in events if e["kind"] == "presence"} == {
        ("coach", CONNECTED), ("client", MUTED)}
    store.close()


async def test_the_running_session_picks_up_changed_settings_within_the_store_interval(tmp_path):
    from livecoach.live.storing import STORE_INTERVAL
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    clock = Clock()  # the session's clock and the wall clock, whose turns time the exchanges
    session = LiveSession(sid, clock=clock, store=store, wall_clock=clock)

    async def run_for(seconds: float) -> None:
        for _ in range(round(seconds / 0.25)):
            clock.t += 0.25
            await asyncio.sleep(0.03)  # the session ticks every 10 ms of real time
        await asyncio.sleep(0.1)

    session.set_state("coach", CONNECTED)  # someone is in the call: its seconds are sampled
    session.start(snapshot_interval=0.01)
    await asyncio.sleep(0.1)
    assert session.nudger.rules.monologue.seconds == 90  # the defaults, read from the store at once
    store.set_coach_settings("local", {"nudges": {"monologue": {"seconds": 30}}})
    await run_for(STORE_INTERVAL - 0.5)
    assert session.nudger.rules.monologue.seconds == 90  # not yet due
    await run_for(0.5)
    assert session.nudger.rules.monologue.seconds == 30
    await run_for(3)
    await session.stop()
    samples = store.indicator_samples(sid)  # one a second, the last ones written at stop
    assert [int(s.session_time) for s in samples] == list(range(int(session.session_time) + 1))
    assert int(session.session_time) >= 3  # a connected participant who sends nothing lags the clock by the 0.3 s stall limit
    store.close()


class CountingStore:
    """A store whose live exchanges are counted, and which can refuse one session's rows."""

    def __init__(self, store, refuse: str | None = None) -> None:
        self.store, self.refuse, self.exchanges = store, refuse, []

    def exchange_live(self, calls):
        self.exchanges.append([c.session_id for c in calls])
        if any(c.session_id == self.refuse for c in calls):
            raise RuntimeError("refused")
        return self.store.exchange_live(calls)


async def test_a_processs_calls_exchange_with_the_store_in_one_transaction(tmp_path):
    """storing.StoreExchange: the exchanges of a process's calls, falling due together, are one
    exchange_live (one transaction) with everyone's rows; each call gets its own coach's settings."""
    from livecoach.live.storing import StoreExchange
    from livecoach.store import IndicatorSample, LiveRows, Store

    store = Store(tmp_path / "db.sqlite3")
    ids = [store.create_session(f"s{k}").id for k in range(3)]
    counting = CountingStore(store)
    exchange = StoreExchange(counting, gather_s=0.05)
    settings = await asyncio.gather(*[
        exchange.submit(LiveRows(sid, [IndicatorSample(1.0, ["coach"], 1.0, 1.0, 0.0)], settings=k != 1))
        for k, sid in enumerate(ids)])
    assert counting.exchanges == [ids]
    assert settings[0] == settings[2] == store.coach_settings("local") and settings[1] is None
    assert all(store.talk_balance(sid) == [(1.0, 1.0, 1.0)] for sid in ids)
    store.close()


async def test_one_calls_refused_rows_cost_the_other_calls_nothing(tmp_path):
    """Should the shared transaction fail, each call's rows go again in a transaction of their own:
    only the call whose rows the store refuses loses them, and it is told."""
    from livecoach.live.storing import StoreExchange
    from livecoach.store import IndicatorSample, LiveRows, Store

    store = Store(tmp_path / "db.sqlite3")
    good, bad = store.create_session("good").id, store.create_session("bad").id
    counting = CountingStore(store, refuse=bad)
    exchange = StoreExchange(counting, gather_s=0.05)
    sample = [IndicatorSample(1.0, [], None, None, 1.0)]
    results = await asyncio.gather(exchange.submit(LiveRows(good, sample, settings=True)),
                                   exchange.submit(LiveRows(bad, sample, settings=True)), return_exceptions=True)
    assert counting.exchanges == [[good, bad], [good], [bad]]
    assert results[0] == store.coach_settings("local") and isinstance(results[1], RuntimeError)
    assert store.talk_balance(good) == [(1.0, None, None)] and store.talk_balance(bad) == []
    store.close()


async def test_live_sessions_sharing_an_exchange_fall_due_together(tmp_path):
    """Sessions started at different times exchange at the same turns of the wall clock, so that
    their rows share a transaction: after the first exchange of each (at once), one a turn for all."""
    from livecoach.live.storing import STORE_INTERVAL, StoreExchange
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    counting = CountingStore(store)
    exchange = StoreExchange(counting, gather_s=0.05)
    wall = Clock()
    sessions = []
    for k in range(3):
        sid = store.create_session(f"s{k}").id
        session = LiveSession(sid, clock=wall, store=store, wall_clock=wall, exchange=exchange)
        sessions.append(session)
        session.set_state("coach", CONNECTED)
        session.start(snapshot_interval=0.01)
        wall.t += 0.5  # the next starts half a second later
        await asyncio.sleep(0.1)
    assert len(counting.exchanges) == 3  # each one's first, at once
    for _ in range(round(2 * STORE_INTERVAL / 0.25)):
        wall.t += 0.25
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.1)
    turns = counting.exchanges[3:]
    assert len(turns) == 2 and all(sorted(t) == sorted(s.id for s in sessions) for t in turns)
    for session in sessions:
        await session.stop()
    store.close()


async def test_an_empty_call_writes_no_samples(tmp_path):
    """After everyone left, the clock runs on until the call closes, but the review must not
    grow an empty tail: no indicator samples while nobody is in the call."""
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    clock = Clock()
    session = LiveSession(sid, clock=clock, store=store)
    session.set_state("coach", CONNECTED)
    for _ in range(12):
        clock.t += 0.25
        session.tick()
        session.observe()
    session.set_state("coach", ABSENT)
    for _ in range(20):
        clock.t += 0.25
        session.tick()
        session.observe()
    await session.exchange_with_store()
    samples = store.indicator_samples(sid)
    assert samples and max(s.session_time for s in samples) <= 3.0
    store.close()


class SlowSender:
    """A received track whose sender delivers ``rate`` seconds of audio a second (a starved
    browser): RTP timestamps continuous, arrivals later and later."""

    def __init__(self, clock: Clock, rate: float, frames: int) -> None:
        self.clock, self.rate, self.frames, self.n = clock, rate, frames, 0
        self.start = clock.t
        self.speech = np.repeat(track("clean", "coach")[: 30 * 16000], 3)  # 48 kHz, crudely

    async def recv(self):
        import av
        from aiortc.mediastreams import MediaStreamError

        if self.n >= self.frames:
            raise MediaStreamError
        chunk = self.speech[self.n * 960 % self.speech.size:][:960]
        frame = av.AudioFrame.from_ndarray(np.pad(chunk, (0, 960 - chunk.size))[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, self.n * 960
        self.n += 1
        self.clock.t = self.start + self.n * 0.020 / self.rate
        return frame


@pytest.mark.parametrize("rate", [1.0, 0.85])
async def test_a_sender_slower_than_real_time_stays_on_the_clock_and_in_the_analysis(rate):
    """Audio that arrives slower than it should is moved up to its arrival (leaving gaps)
    instead of falling ever further behind until the session drops all of it as late."""
    from livecoach.live.tap import AudioTap

    clock = Clock()
    session = LiveSession("s", clock=clock)
    session.set_state("coach", CONNECTED)
    session.set_state("client", CONNECTED)
    tap = AudioTap(session, "coach", SlowSender(clock, rate, 1200))  # 24 s of audio
    take = tap._take
    lags = []

    def taken(frame) -> None:
        take(frame)
        session.tick()
        lags.append(clock.t - session.started - tap._position / 16000)

    tap._take = taken
    await tap.run()
    assert max(lags) < 0.6  # never more than the resync limit behind its arrival
    assert session.dropped_seconds("coach") < 0.5  # nothing (or next to nothing) dropped as late
    assert session.received_seconds("coach") == pytest.approx(24.0, abs=0.5)


def packet(speech: np.ndarray, n: int) -> av.AudioFrame:
    """The ``n``-th 20 ms frame of 16 kHz speech as a decoded 48 kHz RTP frame would come."""
    chunk = np.repeat(speech[n * 320:(n + 1) * 320], 3)  # sample-and-hold is enough
    f = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
    f.sample_rate, f.pts = 48000, n * 960
    return f


def test_a_stalled_participant_shows_as_no_audio_and_holds_nobody_up():
    """The client's packets stop for 3 s without a mute, then come back (their RTP timestamps
    ran on, as a sender's do across a network outage): the client is "no-audio" within 1 s,
    the coach's audio is decided at most 0.1 s (plus the tap's 40 ms batch) behind the clock
    meanwhile, and the client's audio after the gap lands where it belongs (within 20 ms)."""
    from livecoach.live.tap import AudioTap

    clock = Clock()
    session = LiveSession("s", clock=clock)
    sub = session.hub.subscribe()
    taps = {}
    for role in ("coach", "client"):
        session.set_state(role, CONNECTED)
        taps[role] = AudioTap(session, role, track=None)
    speech = {role: track("clean", role) for role in ("coach", "client")}
    frame = lambda role, n: packet(speech[role], n)  # noqa: E731

    stall = range(250, 400)  # packets 5 s to 8 s of the client's stream
    behind, no_audio_at, client_first_after = [], None, None
    for n in range(600):  # 12 s
        clock.t += 0.020
        taps["coach"]._take(frame("coach", n))
        if n not in stall:
            taps["client"]._take(frame("client", n))
            if n == stall.stop:
                client_first_after = taps["client"]._pending_at
        if n % 12 == 0:
            session.tick()
        if n in stall:
            behind.append(session.clock_samples() / 16000 - session.session_time)
            if no_audio_at is None and session.shown_state("client") == "no-audio":
                no_audio_at = (n - stall.start) * 0.020
    assert no_audio_at is not None and no_audio_at <= 1.0
    assert max(behind[5:]) <= 0.1 + 0.04 + 0.02  # stall limit, the tap's batch, one packet
    # after the gap, the client's audio is placed by its timestamps: 3 s after where it stopped
    anchor = taps["coach"]._position - 600 * 320  # where both streams' sample 0 sits (same arrival)
    assert abs(client_first_after - (anchor + stall.stop * 320)) <= 0.020 * 16000
    assert session.shown_state("client") == "connected"
    states = [m["state"] for m in asyncio.run(sub.take()) if m["type"] == "presence" and m["participant"] == "client"]
    assert states[-2:] == ["no-audio", "connected"]


def queued_taps(clock: Clock) -> tuple[LiveSession, dict]:
    """A session with both participants connected, each with a tap on a queue as aiortc's track
    has: a frame put into ``taps[role].queue`` has arrived, and ``_take`` reads it."""
    from types import SimpleNamespace

    from livecoach.live.tap import AudioTap

    session = LiveSession("s", clock=clock)
    taps = {}
    for role in ("coach", "client"):
        session.set_state(role, CONNECTED)
        taps[role] = AudioTap(session, role, track=SimpleNamespace(_queue=asyncio.Queue()))
    return session, taps


def test_a_pause_of_the_servers_own_loop_stalls_no_one():
    """The server's event loop is busy for 0.24 s: both participants' packets wait unread
    meanwhile, then come in a burst, and the tick that was due comes late. Arrival is when a
    packet is decoded, not when the tap reads it, so neither participant is taken for stalled
    and no audio is dropped as late (at the 0.1 s stall limit, judged by when the taps got to
    the audio, the client's burst was dropped)."""
    clock = Clock()
    session, taps = queued_taps(clock)
    speech = {role: track("clean", role) for role in ("coach", "client")}

    def read(role: str) -> None:
        tap = taps[role]
        while not tap.queue.empty():
            tap._take(tap.queue.get_nowait())

    busy = range(100, 112)  # packets 2.0 to 2.24 s come while the loop is busy
    for n in range(300):
        clock.t += 0.020
        if n in busy:
            continue
        if n == busy.stop:
            session.tick(late=0.23)  # the tick due during the pause runs before the packets are read
        for k in ([*busy, n] if n == busy.stop else [n]):
            for role in ("coach", "client"):  # one packet of each socket per loop iteration
                taps[role].queue.put_nowait(packet(speech[role], k))
            for role in ("coach", "client"):
                read(role)
        if n % 12 == 0:
            session.tick()
    assert session.dropped_seconds("coach") == 0 and session.dropped_seconds("client") == 0
    assert session.received_seconds("client") == pytest.approx(6.0 - 0.02, abs=0.05)  # what the batches handed over
    assert session.shown_state("client") == "connected"


def test_a_jittery_participant_is_waited_for_as_long_as_their_spikes_last():
    """The client's network holds a packet 150 ms every 3 s (the ones after it bunch up behind
    it), while the coach's packets come steadily. The first spike finds the 0.1 s limit and
    loses what it held past it; after that the client's stall limit follows their longest
    recent gap, and nothing more is dropped. A steady participant who stops is still judged
    at 0.1 s (test_a_stalled_participant_shows_as_no_audio_and_holds_nobody_up)."""
    clock = Clock()
    session, taps = queued_taps(clock)
    speech = {role: track("clean", role) for role in ("coach", "client")}
    arrivals, last = [], 0.0
    for n in range(1000):  # 20 s
        arrivals.append((1000.0 + (n + 1) * 0.020, "coach", n))
        last = max(last, 1000.0 + (n + 1) * 0.020 + (0.150 if n % 150 == 75 else 0.0))
        arrivals.append((last, "client", n))
    dropped_after_first = None
    for at, role, n in sorted(arrivals):
        clock.t = at
        taps[role].queue.put_nowait(packet(speech[role], n))
        taps[role]._take(taps[role].queue.get_nowait())
        if role == "coach" and n % 12 == 0:
            session.tick()
        if role == "coach" and n == 200:
            dropped_after_first = session.dropped_seconds("client")
    assert 0 < dropped_after_first <= 0.05 + 0.02  # the first spike, past the 0.1 s limit
    assert session.dropped_seconds("client") == dropped_after_first  # and no later one
    assert session.dropped_seconds("coach") == 0


def test_a_session_opened_again_goes_on_from_its_stored_clock_with_the_gap_marked(tmp_path):
    """A worker killed 12 s into a call left its timeline stored up to 12.2 s; the call is opened
    again 52 s after it began (wall clock). The clock goes on at 52 s, not 0, the figures count
    the talk before the kill, and the gap is marked: whoever was in the call left at its start,
    and the clock resumed at its end. Both clocks are injected: nothing sleeps."""
    from livecoach.live.storing import RESUMED
    from livecoach.store import IndicatorSample, Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    began = 1_800_000_000.0  # the wall time at session time 0
    store.log_events(sid, [(began + t, t, kind, who, data) for t, kind, who, data in [
        (0.0, "joined", "coach", {}), (0.5, "joined", "client", {}),
        (4.0, "speech", "coach", {"start": 1.0, "end": 3.7}), (9.0, "speech", "client", {"start": 5.0, "end": 8.7}),
        (11.5, "presence", "client", {"state": "muted"}),
    ]])
    store.add_indicator_samples(sid, [IndicatorSample(float(t), [], None, None, 0.0) for t in range(13)])
    store.log_events(sid, [(began + 30.0, 12.2, "interrupted", None, {})])  # the sweep's: found later, back-dated

    clock = Clock()
    wall = lambda: began + 52.0 + (clock.t - 1000.0)  # noqa: E731
    session = LiveSession(sid, clock=clock, store=store, wall_clock=wall)
    assert session.session_time == pytest.approx(52.0, abs=0.011)
    assert session.clock_samples() == session.origin
    marks = [(e["kind"], e["participant"], e["session_time"], e.get("since")) for e in store.events(sid)[6:]]
    assert marks == [("left", "coach", 12.2, None), ("left", "client", 12.2, None),
                     (RESUMED, None, session.session_time, 12.2)]

    # The call goes on: 15 s of the coach speaking, the client back but muted.
    sub = session.hub.subscribe()
    session.set_state("coach", CONNECTED)
    session.set_state("client", MUTED)
    speech = track("clean", "coach")[: 16000 * 15]
    for pos in range(0, speech.size, 1600):
        clock.t = 1000.0 + (pos + 1600) / 16000
        session.heard("coach")
        session.place("coach", session.origin + pos, speech[pos : pos + 1600])
        session.tick()
        session.observe()
    asyncio.run(session.stop())

    sent = asyncio.run(sub.take())
    assert sent and all(m["session_time"] >= 52.0 for m in sent)
    assert all(m["start"] >= 52.0 for m in sent if m["type"] == "speech")
    metrics = session.snapshot()["metrics"]
    assert metrics["talk_time"]["client"] == pytest.approx(3.7)  # from before the kill
    assert metrics["talk_time"]["coach"] > 2.7 + 5
    assert session.session_time == pytest.approx(67.0, abs=0.35)
    after = store.events(sid)[9:]  # this run's
    assert after and all(e["session_time"] >= 52.0 for e in after)
    samples = [s.session_time for s in store.indicator_samples(sid)]
    assert [int(t) for t in samples] == list(range(13)) + list(range(52, int(session.session_time) + 1))

    # Opened again later: the clock, carried by this run's events, goes on at the wall time.
    clock.t += 20.0
    again = LiveSession(sid, clock=clock, store=store, wall_clock=wall)
    assert again.session_time == pytest.approx(52.0 + clock.t - 1000.0, abs=0.02)
    assert again.engine.segments()["coach"][0] == (1.0, 3.7) and len(again.engine.segments()["coach"]) > 2
    assert store.events(sid)[-1]["kind"] == RESUMED  # nobody was in the call: only the resumption
    store.close()


def test_a_session_without_a_past_starts_its_clock_at_zero(tmp_path):
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    session = LiveSession(sid, clock=Clock(), store=store, wall_clock=lambda: 1_800_000_000.0)
    assert (session.origin, session.session_time, session.clock_samples()) == (0, 0.0, 0)
    assert store.events(sid) == []
    store.close()


def test_a_call_opened_again_days_later_goes_on_at_most_ten_minutes_on(tmp_path):
    """The gap is the wall time since, up to MAX_GAP_S; and a later kill of that run resumes by
    that run's own clock (its ``resumed`` event), not the first run's."""
    from livecoach.live.storing import MAX_GAP_S
    from livecoach.store import Store

    store = Store(tmp_path / "db.sqlite3")
    sid = store.create_session().id
    began = 1_800_000_000.0
    store.log_events(sid, [(began + 30.0, 30.0, "joined", "coach", {}), (began + 40.0, 40.0, "left", "coach", {})])
    clock = Clock()
    later = began + 3 * 86400.0
    again = LiveSession(sid, clock=clock, store=store, wall_clock=lambda: later + (clock.t - 1000.0))
    assert again.session_time == pytest.approx(40.0 + MAX_GAP_S, abs=0.011)
    store.log_events(sid, [(later + 5.0, 40.0 + MAX_GAP_S + 5.0, "joined", "coach", {})])
    third = LiveSession(sid, clock=clock, store=store, wall_clock=lambda: later + 8.0)
    assert third.session_time == pytest.approx(40.0 + MAX_GAP_S + 8.0, abs=0.011)
    store.close()
