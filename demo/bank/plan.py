"""The demo bank's generator: ``build_demo_plan(seed, today=...)``, pure and deterministic.

Everything comes from one ``random.Random(seed)``, so the same seed (and day) always gives the
same bank: staff, ~200 customers and their history. Customer value inputs are drawn per intended
tier and checked against the default tier policy, so all four tiers are well represented;
segments follow the data (``senior`` = aged 60+, ``new`` = customer for under a year) rather than
being sprinkled at random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, time, timedelta
from decimal import Decimal
from typing import TypeVar

from customers.identity import normalise_phone
from customers.models import ContactChannel, ValueTier
from customers.tier_policy import DEFAULT_TIER_POLICY, TierInputs, compute_tier
from demo.bank.catalogue import (
    ARCHETYPES,
    CHAT_LINES,
    CULTURES,
    QUEUES,
    SKILLS,
    TIER_RANGES,
    TIERS,
    TOPICS,
    UK_MOBILE_PREFIXES,
    Culture,
)
from demo.bank.specs import (
    ABANDONED_HISTORY,
    COMPLETED_HISTORY,
    CUSTOMER_COUNT,
    DEFAULT_REGION,
    DEFAULT_SEED,
    HISTORY_DAYS,
    AgentSpec,
    CustomerSpec,
    DemoPlan,
    InteractionSpec,
    QueueSpec,
    UserSpec,
)
from interactions.models import MessageSender
from interactions.states import Channel
from switchboard.auth.models import Role
from switchboard.db import utcnow
from switchboard.errors import Invalid

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Plan generation


def _years_ago(today: date, years: float, rng: random.Random) -> date:
    days = int(years * 365.25) + rng.randint(0, 300)
    return today - timedelta(days=days)


def _uk_mobile(rng: random.Random, used: set[str]) -> str:
    """A valid UK mobile number in E.164 (``phonenumbers`` rejects some ranges: those are redrawn)."""
    while True:
        number = f"+44{rng.choice(UK_MOBILE_PREFIXES)}{rng.randint(100000, 999999)}"
        if number in used:
            continue
        try:
            normalised = normalise_phone(number, default_region=DEFAULT_REGION)
        except Invalid:
            continue
        used.add(normalised)
        return normalised


def _ascii_slug(text: str) -> str:
    table = str.maketrans(
        {
            "ł": "l",
            "Ł": "L",
            "ą": "a",
            "ę": "e",
            "ś": "s",
            "ć": "c",
            "ń": "n",
            "ó": "o",
            "ż": "z",
            "ź": "z",
            "é": "e",
            "è": "e",
            "É": "E",
            "á": "a",
            "í": "i",
            "ú": "u",
            "ñ": "n",
            "â": "a",
            "ô": "o",
        }
    )
    return "".join(ch for ch in text.translate(table).lower() if ch.isalnum())


def _pick_name(rng: random.Random, culture: Culture, used: set[str]) -> tuple[str, str]:
    while True:
        female = rng.random() < 0.5
        given = rng.choice(culture.given_female if female else culture.given_male)
        surname = rng.choice(culture.surnames)
        if female and culture.key == "polish" and surname.endswith(("ski", "cki")):
            surname = surname[:-1] + "a"  # Kowalski -> Kowalska
        name = f"{given} {surname}"
        if name not in used:
            used.add(name)
            return given, surname


def _weighted(rng: random.Random, items: Sequence[T], weights: Sequence[float]) -> T:
    return rng.choices(items, weights=weights, k=1)[0]


def _staff(rng: random.Random, used_names: set[str]) -> tuple[tuple[UserSpec, ...], tuple[AgentSpec, ...]]:
    users = [
        UserSpec("admin", "Alex Admin", Role.ADMIN, "admin@bank.example"),
        UserSpec("supervisor1", "Sarah Okafor", Role.SUPERVISOR, "supervisor1@bank.example"),
        UserSpec("supervisor2", "Tomasz Nowak", Role.SUPERVISOR, "supervisor2@bank.example"),
    ]
    used_names.update(u.display_name for u in users)
    # (team, count, core skills with proficiency ranges, optional extra skills, extra languages pool)
    plan: tuple[tuple[str, int, dict[str, tuple[int, int]], tuple[str, ...], tuple[str, ...]], ...] = (
        (
            "Premier",
            5,
            {"private_banking": (3, 5), "wealth": (3, 5)},
            ("retail_banking", "mortgages", "complaints"),
            ("zh", "fr", "ar"),
        ),
        (
            "Silver Line",
            6,
            {"seniors_care": (3, 5), "retail_banking": (2, 4)},
            ("cards", "digital_support", "complaints"),
            ("cy", "ur", "pl", "zh"),
        ),
        (
            "Retail A",
            8,
            {"retail_banking": (2, 5)},
            ("cards", "card_fraud", "loans", "digital_support", "complaints", "mortgages"),
            ("es", "pl", "ur"),
        ),
        (
            "Retail B",
            8,
            {"retail_banking": (1, 5)},
            ("cards", "card_fraud", "mortgages", "loans", "business_banking", "digital_support"),
            ("zh", "ar", "fr", "cy"),
        ),
        (
            "Collections",
            3,
            {"collections": (3, 5), "complaints": (2, 4)},
            ("loans", "retail_banking"),
            ("pl", "ur"),
        ),
    )
    agents: list[AgentSpec] = []
    number = 0
    for team, count, core, extras, extra_languages in plan:
        for i in range(count):
            number += 1
            username = f"agent{number:02d}"
            culture = _weighted(rng, tuple(c for c, _ in CULTURES), tuple(w for _, w in CULTURES))
            given, surname = _pick_name(rng, culture, used_names)
            skills = {name: rng.randint(lo, hi) for name, (lo, hi) in core.items()}
            rm = team == "Premier" and i < 3
            if rm:  # relationship managers are the Premier experts
                skills = {"private_banking": rng.randint(4, 5), "wealth": rng.randint(4, 5)}
            wanted = rng.randint(max(2, len(skills)), 5)
            pool = [s for s in extras if s not in skills]
            rng.shuffle(pool)
            for extra in pool[: max(0, wanted - len(skills))]:
                skills[extra] = rng.randint(1, 5)
            languages = ["en"]
            if culture.language != "en" and rng.random() < 0.7:
                languages.append(culture.language)
            if rng.random() < 0.25:
                other = rng.choice(extra_languages)
                if other not in languages:
                    languages.append(other)
            channel_max = {"voice": 1, "chat": rng.randint(2, 4), "ticket": 5, "email": 5}
            display = f"{given} {surname}"
            agents.append(
                AgentSpec(
                    username=username,
                    display_name=display,
                    team=team,
                    languages=tuple(languages),
                    skills=skills,
                    channel_max=channel_max,
                    relationship_manager=rm,
                )
            )
            users.append(UserSpec(username, display, Role.AGENT, f"{username}@bank.example"))
    return tuple(users), tuple(agents)


def _value_inputs(
    rng: random.Random, tier: ValueTier, since: date, today: date
) -> tuple[Decimal, int, Decimal, Decimal]:
    """Draw inputs for ``tier``; redraw (deterministically) until the default policy agrees."""
    (b_lo, b_hi), (p_lo, p_hi), (n_lo, n_hi) = TIER_RANGES[tier]
    drawn: tuple[Decimal, int, Decimal, Decimal] | None = None
    for _ in range(60):
        balance = Decimal(rng.randint(b_lo // 10, b_hi // 10) * 10).quantize(Decimal("0.01"))
        products = rng.randint(p_lo, p_hi)
        cost = Decimal(rng.randint(40, 1_500)).quantize(Decimal("0.01"))
        profit = (Decimal(rng.randint(n_lo, n_hi)) + cost).quantize(Decimal("0.01"))
        drawn = (balance, products, profit, cost)
        inputs = TierInputs(
            relationship_balance=balance,
            products_held=products,
            annual_profit=profit,
            cost_to_serve=cost,
            customer_since=since,
        )
        if compute_tier(inputs, DEFAULT_TIER_POLICY, today=today).tier is tier:
            return drawn
    assert drawn is not None
    return drawn


def _customers(
    rng: random.Random, today: date, agents: tuple[AgentSpec, ...], used_names: set[str]
) -> tuple[CustomerSpec, ...]:
    used_phones: set[str] = set()
    used_emails: set[str] = set()
    managers = [a.username for a in agents if a.relationship_manager]
    culture_list = tuple(c for c, _ in CULTURES)
    culture_weights = tuple(w for _, w in CULTURES)
    arche_keys = tuple(a[0] for a in ARCHETYPES)
    arche_weights = tuple(a[1] for a in ARCHETYPES)
    arche_by_key = {a[0]: a for a in ARCHETYPES}
    result: list[CustomerSpec] = []
    for n in range(CUSTOMER_COUNT):
        key = _weighted(rng, arche_keys, arche_weights)
        _, _, (age_lo, age_hi), (ten_lo, ten_hi), tier_weights = arche_by_key[key]
        culture: Culture = _weighted(rng, culture_list, culture_weights)
        given, surname = _pick_name(rng, culture, used_names)
        age = rng.randint(age_lo, age_hi)
        dob = today - timedelta(days=int(age * 365.25) + rng.randint(1, 360))
        tenure = rng.uniform(ten_lo, min(ten_hi, max(ten_lo, age - 17)))
        since = today - timedelta(days=max(14, int(tenure * 365.25)))
        tier: ValueTier = _weighted(rng, TIERS, tier_weights)
        balance, products, profit, cost = _value_inputs(rng, tier, since, today)

        segments: list[str] = []
        if key == "private" or tier is ValueTier.PLATINUM:
            segments.append("private-banking")
        if age >= 60:
            segments.append("senior")
            if rng.random() < (0.35 if age >= 80 else 0.15):
                segments.append("vulnerable")
        if age <= 25:
            segments.append("young")
        if key == "salaried" or (key == "new" and rng.random() < 0.5):
            segments.append("salaried")
        if key == "business":
            segments.append("business")
        if (today - since).days < 365:
            segments.append("new")

        language = culture.language if rng.random() < culture.share_speaking_language else "en"
        if age >= 70 and culture.language != "en" and rng.random() < 0.5:
            language = culture.language  # older customers more often want their first language
        timezone = "Europe/London"
        if culture.timezones and rng.random() < 0.12:
            timezone = rng.choice(culture.timezones)

        phone = _uk_mobile(rng, used_phones)
        email: str | None = None
        if age < 80 or rng.random() < 0.3:
            local = f"{_ascii_slug(given)}.{_ascii_slug(surname)}"
            domain = rng.choice(("example.com", "example.co.uk", "mail.example.net", "example.org"))
            candidate = f"{local}@{domain}"
            suffix = 1
            while candidate in used_emails:
                suffix += 1
                candidate = f"{local}{suffix}@{domain}"
            used_emails.add(candidate)
            email = candidate
        app_id = f"app-{n + 1:05d}" if age < 70 and rng.random() < 0.6 else None

        if "senior" in segments:
            preferred = _weighted(rng, (ContactChannel.VOICE, ContactChannel.EMAIL, None), (7, 1, 2))
        elif "young" in segments:
            preferred = _weighted(rng, (ContactChannel.CHAT, ContactChannel.SMS, None), (6, 2, 2))
        elif "business" in segments:
            preferred = _weighted(rng, (ContactChannel.EMAIL, ContactChannel.VOICE), (6, 4))
        else:
            preferred = _weighted(
                rng, (ContactChannel.VOICE, ContactChannel.CHAT, ContactChannel.EMAIL, None), (3, 3, 2, 2)
            )
        quiet: tuple[time, time] | None = None
        if rng.random() < 0.3:
            quiet = rng.choice(((time(21), time(8)), (time(20), time(9)), (time(22), time(7, 30))))
        manager = rng.choice(managers) if "private-banking" in segments and managers else None

        result.append(
            CustomerSpec(
                display_name=f"{given} {surname}",
                language=language,
                timezone=timezone,
                date_of_birth=dob,
                segments=tuple(segments),
                relationship_balance=balance,
                products_held=products,
                annual_profit=profit,
                cost_to_serve=cost,
                customer_since=since,
                intended_tier=tier,
                phone=phone,
                email=email,
                app_id=app_id,
                relationship_manager=manager,
                preferred_channel=preferred,
                do_not_contact=rng.random() < 0.08,
                marketing_consent=rng.random() < 0.45,
                quiet_hours=quiet,
            )
        )
    return tuple(result)


def _queue_for(customer: CustomerSpec, rng: random.Random) -> str:
    if "private-banking" in customer.segments:
        return "private-banking" if rng.random() < 0.8 else "retail"
    if "senior" in customer.segments:
        return "seniors" if rng.random() < 0.75 else rng.choice(("retail", "cards"))
    return _weighted(rng, ("retail", "cards", "mortgages", "collections"), (50, 25, 15, 10))


def _channel_for(customer: CustomerSpec, queue: QueueSpec, rng: random.Random) -> Channel:
    preferred = {
        ContactChannel.VOICE: Channel.VOICE,
        ContactChannel.CHAT: Channel.CHAT,
        ContactChannel.EMAIL: Channel.EMAIL,
    }.get(customer.preferred_channel)  # type: ignore[arg-type]
    allowed = [Channel(c) for c in queue.channels]
    if preferred in allowed and rng.random() < 0.7:
        return preferred
    return rng.choice(allowed)


def serves(agent: AgentSpec, queue: QueueSpec) -> bool:
    return all(agent.skills.get(skill, 0) >= level for skill, level in queue.required_skills.items())


def _history(
    rng: random.Random,
    customers: tuple[CustomerSpec, ...],
    agents: tuple[AgentSpec, ...],
    queues: tuple[QueueSpec, ...],
) -> tuple[InteractionSpec, ...]:
    by_name = {q.name: q for q in queues}
    members = {q.name: [a for a in agents if serves(a, q)] for q in queues}
    # Seniors and premier customers call more; everyone else roughly evenly.
    weights = [
        3 if "senior" in c.segments else 2 if "private-banking" in c.segments else 1 for c in customers
    ]
    result: list[InteractionSpec] = []
    for n in range(COMPLETED_HISTORY + ABANDONED_HISTORY):
        abandoned = n >= COMPLETED_HISTORY
        index = rng.choices(range(len(customers)), weights=weights, k=1)[0]
        customer = customers[index]
        queue = by_name[_queue_for(customer, rng)]
        channel = Channel.VOICE if abandoned else _channel_for(customer, queue, rng)
        topic, subject, dispositions = rng.choice(TOPICS[queue.name])
        agent: AgentSpec | None = None
        if not abandoned:
            pool = members[queue.name]
            if customer.relationship_manager and queue.name == "private-banking" and rng.random() < 0.7:
                agent = next(a for a in agents if a.username == customer.relationship_manager)
            else:
                speakers = [a for a in pool if customer.language in a.languages]
                agent = rng.choice(speakers if speakers and rng.random() < 0.8 else pool)
        messages: list[tuple[MessageSender, str]] = []
        note: str | None = None
        if not abandoned:
            if channel is Channel.CHAT:
                for line_customer, line_agent in CHAT_LINES[: rng.randint(2, 4)]:
                    messages.append((MessageSender.CUSTOMER, line_customer))
                    messages.append((MessageSender.AGENT, line_agent))
            elif channel in (Channel.EMAIL, Channel.TICKET):
                messages.append((MessageSender.CUSTOMER, f"{subject}. Could you look into this for me?"))
                messages.append((MessageSender.AGENT, "Thank you for your message; this is now resolved."))
            else:
                note = f"Call about: {subject.lower()}. Customer happy with the outcome."
        handle = {Channel.VOICE: (120, 900), Channel.CHAT: (240, 1500)}.get(channel, (300, 3600))
        result.append(
            InteractionSpec(
                customer=index,
                channel=channel,
                queue=queue.name,
                topic=topic,
                subject=subject,
                agent=agent.username if agent else None,
                started_seconds_ago=rng.randint(3_600, HISTORY_DAYS * 86_400),
                wait_seconds=rng.randint(3, 50) if not abandoned else rng.randint(40, 240),
                handle_seconds=rng.randint(*handle),
                wrap_seconds=rng.randint(15, queue.wrap_up_seconds),
                messages=tuple(messages),
                note=note,
                disposition=rng.choice(dispositions) if not abandoned else None,
                abandoned=abandoned,
            )
        )
    # Oldest first, so the timeline ids follow the clock.
    result.sort(key=lambda spec: -spec.started_seconds_ago)
    return tuple(result)


REPEATS = 14


def _with_repeats(history: tuple[InteractionSpec, ...], rng: random.Random) -> tuple[InteractionSpec, ...]:
    """Turn some completed contacts into repeats of an earlier one: the same customer, queue,
    topic and agent again 2 to 40 hours later (what the repeat-contact alert and the journey look
    for). The counts of the history stay as they are; its own random draws are untouched."""
    specs = list(history)
    completed = [i for i, s in enumerate(specs) if not s.abandoned and s.started_seconds_ago > 2 * 86_400]
    rng.shuffle(completed)
    for first, replaced in zip(completed[:REPEATS], completed[REPEATS : 2 * REPEATS], strict=True):
        original = specs[first]
        later = original.started_seconds_ago - rng.randint(2 * 3_600, 40 * 3_600)
        specs[replaced] = replace(original, started_seconds_ago=max(later, 3_600))
    specs.sort(key=lambda spec: -spec.started_seconds_ago)
    return tuple(specs)


def build_demo_plan(seed: int = DEFAULT_SEED, *, today: date | None = None) -> DemoPlan:
    """The whole demo bank as plain data; the same seed (and day) always gives the same plan."""
    today = today or utcnow().date()
    rng = random.Random(seed)
    used_names: set[str] = set()
    users, agents = _staff(rng, used_names)
    customers = _customers(rng, today, agents, used_names)
    interactions = _with_repeats(_history(rng, customers, agents, QUEUES), random.Random(seed + 3))
    return DemoPlan(
        seed=seed,
        today=today,
        users=users,
        skills=SKILLS,
        agents=agents,
        queues=QUEUES,
        customers=customers,
        interactions=interactions,
    )
