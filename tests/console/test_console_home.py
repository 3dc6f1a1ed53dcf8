"""Where each role lands (issue #11 item 6): supervisors and admins on the console at /supervisor,
agents on the desktop; a supervisor or admin with an agent profile has a visible link each way."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from switchboard.auth.models import Role
from switchboard.db import utcnow
from tests.factories import agent_profile, join_queue, make_agent, make_queue
from tests.helpers import TEST_PASSWORD, eventually
from workforce.models import Presence

DESK_LINK = re.compile(r'<a class="switch-link" href="/desktop">Agent desktop</a>')
CONSOLE_LINK = re.compile(r'<a class="switch-link" href="/supervisor">Supervisor console</a>')


@pytest.mark.parametrize(
    ("role", "home"),
    [(Role.SUPERVISOR, "/supervisor"), (Role.ADMIN, "/supervisor"), (Role.AGENT, "/desktop")],
)
async def test_sign_in_and_root_lead_to_the_role_home(client, make_user, role, home):
    user, headers = await make_user(role)
    form = await client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    signed_in = await client.post(
        "/login", data={"username": user.username, "password": TEST_PASSWORD, "csrf_token": csrf}
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == home
    root = await client.get("/", headers=headers)
    assert root.status_code == 303 and root.headers["location"] == home


async def test_supervisor_with_an_agent_profile_switches_both_ways(client, db, make_user):
    user, headers = await make_user(Role.SUPERVISOR)
    await agent_profile(db, user, languages=["en"])
    for page in ("/supervisor", "/supervisor/audit"):
        console = await client.get(page, headers=headers)
        assert console.status_code == 200 and DESK_LINK.search(console.text), page
    desk = await client.get("/desktop", headers=headers)
    assert desk.status_code == 200 and CONSOLE_LINK.search(desk.text)


async def test_no_switch_without_both_sides(client, db, make_user):
    supervisor, sup_h = await make_user(Role.SUPERVISOR)  # takes no contacts: no profile
    console = await client.get("/supervisor", headers=sup_h)
    assert console.status_code == 200 and not DESK_LINK.search(console.text)
    agent, agent_h = await make_user(Role.AGENT)
    await agent_profile(db, agent, languages=["en"])
    desk = await client.get("/desktop", headers=agent_h)
    assert desk.status_code == 200 and not CONSOLE_LINK.search(desk.text)


CONSOLE_NAV = re.compile(r'<nav aria-label="Console" class="console-nav">(.*?)</nav>', re.S)
NAV_LINK = re.compile(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>')


async def test_every_console_page_has_the_sections_and_marks_where_you_are(client, db, make_user):
    """The console's sections under the top bar on each console page, the current one marked;
    admins also get their pages; the agent desktop has none of it."""
    _, sup_h = await make_user(Role.SUPERVISOR)
    where = {
        "/supervisor": "Floor",
        "/supervisor/rules": "Rules",
        "/supervisor/rules/new": "Rules",
        "/supervisor/workforce/forecast": "Forecast",
        "/supervisor/audit": "Audit",
    }
    for page, current in where.items():
        response = await client.get(page, headers=sup_h)
        assert response.status_code == 200, page
        nav = CONSOLE_NAV.search(response.text)
        assert nav is not None, page
        links = NAV_LINK.findall(nav.group(1))
        assert [label for _, marked, label in links if marked] == [current], page
        assert {"Floor", "Live work", "Queues", "Schedules", "Audit"} <= {label for *_, label in links}
        assert "Users" not in {label for *_, label in links}
        for href, *_ in links:  # every section is a page the supervisor may open
            if href.startswith("/supervisor"):
                assert (await client.get(href, headers=sup_h)).status_code == 200, href
    _, admin_h = await make_user(Role.ADMIN)
    admin_nav = CONSOLE_NAV.search((await client.get("/admin/users", headers=admin_h)).text)
    assert admin_nav is not None
    admin_links = NAV_LINK.findall(admin_nav.group(1))
    assert [label for _, marked, label in admin_links if marked] == ["Users"]
    assert {"Users", "Jobs"} <= {label for *_, label in admin_links}
    agent, agent_h = await make_user(Role.AGENT)
    await agent_profile(db, agent, languages=["en"])
    desk = await client.get("/desktop", headers=agent_h)
    assert desk.status_code == 200 and CONSOLE_NAV.search(desk.text) is None


def test_the_queues_figures_say_when_in_the_floor_s_time_zone():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from console.floor import Floor, QueueRow, in_state
    from switchboard.templating import templates

    floor = Floor(queues=[QueueRow("cards", "Cards", 1, 20)], agents=[], signed_in=0)
    at = datetime(2026, 7, 1, 11, 4, 5, 123456, tzinfo=UTC)
    stats = {"at": at.isoformat(), "agents_by_presence": {}, "queues": {}}
    html = templates.get_template("console/_floor.html").render(
        floor=floor, stats=stats, stats_at=at.astimezone(ZoneInfo("Europe/London")), in_state=in_state
    )
    assert f'as of <time datetime="{at.isoformat()}">12:04:05</time>' in html  # BST, no microseconds


async def test_console_home_shows_staffing_per_queue_and_agents_time_in_state(client, db, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    now = utcnow()
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=["chat"])
        loans = await make_queue(s, "loans", channels=["chat"])
        agents = []
        for name, presence, reason, ago in [
            ("Ana Away", Presence.BREAK, "lunch", timedelta(hours=1, minutes=2, seconds=3)),
            ("Ben Busy", Presence.AVAILABLE, None, timedelta(minutes=4, seconds=5)),
            ("Cy Offline", Presence.OFFLINE, None, timedelta(days=1)),
        ]:
            user, _ = await make_user(Role.AGENT)
            agent = await make_agent(
                s,
                user,
                name=name,
                presence=presence,
                presence_reason=reason,
                presence_since=now - ago,
                queues=[cards],
            )
            agents.append(agent)
        await join_queue(s, loans, agents[2])

    page = await client.get("/supervisor", headers=headers)
    assert page.status_code == 200
    queues = re.search(r'<table class="data" id="wallboard-queues">.*?</table>', page.text, re.S).group(0)
    staffed = dict(
        re.findall(r'<tr id="queue-(\w+)">.*?<td>[^<]*</td><td>[^<]*</td>\s*<td>(\d+)</td>', queues, re.S)
    )
    assert staffed == {"cards": "2", "loans": "0"}  # the offline member is not staffing
    agents_table = re.search(r'<table class="data" id="wallboard-agents">.*?</table>', page.text, re.S).group(
        0
    )
    rows = re.findall(
        r'<th scope="row">([^<]+)</th><td>(\w+)</td><td>([^<]+)</td>\s*<td><time[^>]*>([^<]+)</time>',
        agents_table,
    )
    assert [(n, p, r) for n, p, r, _ in rows] == [
        ("Ana Away", "break", "lunch"),
        ("Ben Busy", "available", "–"),
    ]
    assert rows[0][3].startswith("1:02:0") and rows[1][3].startswith("4:0")
    assert "Cy Offline" not in page.text


async def test_the_floor_filters_by_queue_and_warns_past_the_queues_threshold(routed, db, make_user):
    """Issue #11 item 1: filter by queue (a GET form, the socket follows the same filter) and the
    queue's service-level threshold: a longest wait over it is marked, under it is not."""
    _, client = routed
    _, headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=["chat"], sl_threshold_seconds=0)
        loans = await make_queue(s, "loans", channels=["chat"], sl_threshold_seconds=3600)
        for name, queue in (("Ana Cards", cards), ("Lee Loans", loans)):
            user, _ = await make_user(Role.AGENT)
            await make_agent(s, user, name=name, presence=Presence.BREAK, queues=[queue])
    for queue in ("cards", "loans"):  # nobody available: both wait
        body = {"channel": "chat", "queue": queue, "identity": {"kind": "phone", "value": "+447400777003"}}
        created = await client.post("/api/interactions", json=body, headers=headers)
        assert created.status_code == 201, created.text

    async def both_waiting_over_zero() -> bool:
        text = (await client.get("/supervisor", headers=headers)).text
        waits = re.findall(
            r'id="queue-(\w+)"[^>]*>\s*<th scope="row">\w+</th>\s*<td>1</td><td>([\d.]+)', text
        )
        return len(waits) == 2 and all(float(w) > 0 for _, w in waits)

    await eventually(both_waiting_over_zero, what="both chats waiting in the engine's figures")
    page = (await client.get("/supervisor", headers=headers)).text
    assert re.search(r'<tr id="queue-cards" class="over-threshold">.*?over 0 s', page, re.S)
    assert '<tr id="queue-loans">' in page and "over 3600 s" not in page

    only = await client.get("/supervisor", params={"queue": "cards"}, headers=headers)
    assert only.status_code == 200
    assert 'id="queue-cards"' in only.text and 'id="queue-loans"' not in only.text
    assert "Ana Cards" in only.text and "Lee Loans" not in only.text
    assert '<option value="cards" selected>' in only.text
    assert 'ws-connect="/supervisor/ws?queue=cards"' in only.text

    unknown = await client.get("/supervisor", params={"queue": "nope"}, headers=headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in unknown.json()["errors"]] == ["queue"]


def test_the_wallboard_shows_each_queues_average_handle_time():
    from console.floor import Floor, QueueRow, in_state
    from switchboard.templating import templates

    floor = Floor(
        queues=[QueueRow("cards", "Cards", 2, 20), QueueRow("loans", "Loans", 1, 20)], agents=[], signed_in=0
    )
    figures = {
        "waiting": 0,
        "longest_wait_seconds": 0,
        "offered": 3,
        "accepted": 3,
        "rejected": 0,
        "missed": 0,
    }
    stats = {
        "at": "12:00:00",
        "agents_by_presence": {},
        "queues": {
            "cards": {**figures, "abandoned": 0, "service_level": 1.0, "average_handle_seconds": 185.4},
            "loans": {**figures, "abandoned": 0, "service_level": None, "average_handle_seconds": None},
        },
    }
    html = templates.get_template("console/_floor.html").render(floor=floor, stats=stats, in_state=in_state)
    cards = re.search(r'<tr id="queue-cards".*?</tr>', html, re.S).group(0)
    loans = re.search(r'<tr id="queue-loans".*?</tr>', html, re.S).group(0)
    assert "<td>3:05</td>" in cards  # 185 s
    assert cards.count("<td>") == loans.count("<td>") and "<td>–</td>" in loans
