"""The demo bank's catalogue: the fixed reference data the generator draws from.

Skills and queues, name pools per cultural background, customer archetypes and the value ranges
per tier, teams, the topics each queue handles (with the wrap-up codes they end in), chat lines
and the desktop's canned responses. Data only: changing the bank's look is an edit here, not in
the generator (``demo.bank.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass

from customers.models import ValueTier
from demo.bank.specs import QueueSpec
from workforce.models import SelectionStrategy

# --------------------------------------------------------------------------------------------
# Reference data

SKILLS: tuple[tuple[str, str], ...] = (
    ("retail_banking", "Current accounts, savings, payments, statements"),
    ("cards", "Debit and credit cards: limits, PINs, replacements"),
    ("card_fraud", "Disputed transactions, blocked cards, fraud claims"),
    ("mortgages", "Mortgage applications, rates, overpayments, arrears"),
    ("loans", "Personal loans and overdrafts"),
    ("private_banking", "Private-banking clients and their relationship managers"),
    ("wealth", "Investments, ISAs, pensions, wealth planning"),
    ("seniors_care", "Silver Line: patient, plain-language help for older customers"),
    ("collections", "Payment arrangements, arrears, financial difficulty"),
    ("complaints", "Formal complaints and redress"),
    ("business_banking", "Small-business accounts and lending"),
    ("digital_support", "Mobile app, online banking, passwords and devices"),
)

QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(
        name="retail",
        display_name="Retail Banking",
        channels=("voice", "chat", "email", "ticket"),
        sl_target_percent=80,
        sl_threshold_seconds=20,
        strategy=SelectionStrategy.LONGEST_IDLE,
        required_skills={"retail_banking": 1},
        overflow=None,
        wrap_up_seconds=60,
    ),
    QueueSpec(
        name="cards",
        display_name="Cards & Fraud",
        channels=("voice", "chat"),
        sl_target_percent=80,
        sl_threshold_seconds=20,
        strategy=SelectionStrategy.BEST_PROFICIENCY,
        required_skills={"cards": 1},
        overflow="retail",
        wrap_up_seconds=45,
    ),
    QueueSpec(
        name="mortgages",
        display_name="Mortgages & Loans",
        channels=("voice", "email", "ticket"),
        sl_target_percent=80,
        sl_threshold_seconds=30,
        strategy=SelectionStrategy.BEST_PROFICIENCY,
        required_skills={"mortgages": 1},
        overflow="retail",
        wrap_up_seconds=120,
    ),
    QueueSpec(
        name="private-banking",
        display_name="Private Banking",
        channels=("voice", "chat", "email"),
        sl_target_percent=90,
        sl_threshold_seconds=15,
        strategy=SelectionStrategy.BEST_PROFICIENCY,
        required_skills={"private_banking": 1},
        overflow="retail",
        wrap_up_seconds=90,
        settings={"relationship_manager_first_seconds": 30},
    ),
    QueueSpec(
        name="seniors",
        display_name="Silver Line",
        channels=("voice", "chat"),
        sl_target_percent=90,
        sl_threshold_seconds=30,
        strategy=SelectionStrategy.LONGEST_IDLE,
        required_skills={"seniors_care": 1},
        overflow="retail",
        wrap_up_seconds=120,
        settings={"large_text": True, "same_team_preferred": "Silver Line"},
    ),
    QueueSpec(
        name="collections",
        display_name="Collections & Support",
        channels=("voice", "email", "ticket"),
        sl_target_percent=80,
        sl_threshold_seconds=30,
        strategy=SelectionStrategy.LEAST_OCCUPIED,
        required_skills={"collections": 1},
        overflow="retail",
        wrap_up_seconds=90,
    ),
)


@dataclass(frozen=True)
class Culture:
    key: str
    language: str
    share_speaking_language: float  # chance a customer of this background prefers that language
    given_female: tuple[str, ...]
    given_male: tuple[str, ...]
    surnames: tuple[str, ...]
    timezones: tuple[str, ...] = ()  # occasional customers living abroad


CULTURES: tuple[tuple[Culture, int], ...] = (
    (
        Culture(
            "british",
            "en",
            1.0,
            (
                "Margaret",
                "Susan",
                "Emma",
                "Olivia",
                "Charlotte",
                "Joan",
                "Patricia",
                "Hannah",
                "Lucy",
                "Sophie",
                "Rachel",
                "Eleanor",
                "Dorothy",
                "Amelia",
                "Grace",
                "Helen",
                "Jessica",
                "Beryl",
            ),
            (
                "James",
                "William",
                "George",
                "Harry",
                "Oliver",
                "David",
                "Peter",
                "Thomas",
                "Arthur",
                "Michael",
                "Jack",
                "Robert",
                "Stephen",
                "Alfie",
                "Edward",
                "Kenneth",
                "Daniel",
                "Colin",
            ),
            (
                "Smith",
                "Jones",
                "Taylor",
                "Brown",
                "Wilson",
                "Evans",
                "Thomas",
                "Johnson",
                "Roberts",
                "Walker",
                "Wright",
                "Robinson",
                "Thompson",
                "White",
                "Hughes",
                "Edwards",
                "Green",
                "Hall",
                "Wood",
                "Clarke",
                "Harrison",
                "Baker",
                "Turner",
                "Cooper",
                "Hill",
                "Ward",
                "Morris",
            ),
            ("Europe/Madrid", "Australia/Sydney"),
        ),
        40,
    ),
    (
        Culture(
            "welsh",
            "cy",
            0.35,
            ("Angharad", "Carys", "Cerys", "Eirlys", "Ffion", "Gwen", "Nia", "Rhiannon", "Siân"),
            ("Dafydd", "Emrys", "Gareth", "Gethin", "Iwan", "Owain", "Rhys", "Tomos", "Huw"),
            ("Jones", "Davies", "Williams", "Price", "Pritchard", "Llewellyn", "Powell", "Morgan", "Vaughan"),
        ),
        8,
    ),
    (
        Culture(
            "polish",
            "pl",
            0.5,
            ("Agnieszka", "Katarzyna", "Małgorzata", "Zofia", "Anna", "Magdalena", "Joanna", "Ewa"),
            ("Piotr", "Krzysztof", "Tomasz", "Paweł", "Marek", "Jakub", "Andrzej", "Łukasz"),
            (
                "Nowak",
                "Kowalski",
                "Wiśniewski",
                "Wójcik",
                "Kamiński",
                "Lewandowski",
                "Zieliński",
                "Szymański",
                "Dąbrowski",
                "Kaczmarek",
            ),
            ("Europe/Warsaw",),
        ),
        8,
    ),
    (
        Culture(
            "chinese",
            "zh",
            0.55,
            ("Mei", "Li Na", "Xiu Ying", "Hui Min", "Ying", "Wen", "Jia Hui", "Yan", "Lan"),
            ("Wei", "Jun", "Hao", "Ming", "Jian", "Tao", "Zhi Hao", "Kai", "Chen"),
            ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Chan", "Wong"),
            ("Asia/Hong_Kong", "Asia/Shanghai"),
        ),
        10,
    ),
    (
        Culture(
            "south_asian",
            "ur",
            0.3,
            ("Aisha", "Fatima", "Priya", "Sana", "Ayesha", "Nadia", "Anjali", "Zainab", "Farah"),
            ("Mohammed", "Imran", "Rajesh", "Arjun", "Bilal", "Hassan", "Sanjay", "Tariq", "Amir"),
            ("Khan", "Patel", "Hussain", "Ahmed", "Shah", "Singh", "Iqbal", "Malik", "Sharma", "Begum"),
        ),
        12,
    ),
    (
        Culture(
            "spanish",
            "es",
            0.5,
            ("Lucía", "María", "Carmen", "Isabel", "Sofía", "Elena", "Paula", "Marta"),
            ("Javier", "Carlos", "Alejandro", "Miguel", "Pablo", "Diego", "Sergio", "Luis"),
            ("García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz", "Díaz"),
            ("Europe/Madrid",),
        ),
        6,
    ),
    (
        Culture(
            "arabic",
            "ar",
            0.45,
            ("Layla", "Mariam", "Noor", "Huda", "Yasmin", "Rania", "Salma"),
            ("Omar", "Ahmed", "Khalid", "Youssef", "Karim", "Samir", "Faisal"),
            ("Al-Sayed", "Haddad", "Mansour", "Nasser", "Khalil", "Saleh", "Aziz", "Farouk"),
            ("Asia/Dubai",),
        ),
        6,
    ),
    (
        Culture(
            "french",
            "fr",
            0.5,
            ("Camille", "Chloé", "Manon", "Inès", "Juliette", "Claire", "Amélie"),
            ("Louis", "Gabriel", "Hugo", "Julien", "Mathieu", "Antoine", "Étienne"),
            ("Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Lefèvre", "Girard", "Fournier"),
            ("Europe/Paris",),
        ),
        5,
    ),
    (
        Culture(
            "west_african",
            "en",
            1.0,
            ("Adaeze", "Chiamaka", "Funmilayo", "Ngozi", "Abena", "Ama", "Yetunde"),
            ("Chinedu", "Oluwaseun", "Kwame", "Emeka", "Tunde", "Kofi", "Babajide"),
            ("Okafor", "Adeyemi", "Mensah", "Okoro", "Balogun", "Asante", "Eze", "Owusu"),
        ),
        5,
    ),
)

# Archetypes: (segment key, weight, age range, tenure range in years, tier weights).
TIERS = (ValueTier.PLATINUM, ValueTier.GOLD, ValueTier.SILVER, ValueTier.STANDARD)
ARCHETYPES: tuple[tuple[str, int, tuple[int, int], tuple[float, float], tuple[int, int, int, int]], ...] = (
    ("private", 10, (38, 82), (3, 30), (80, 20, 0, 0)),
    ("senior", 28, (60, 93), (2, 45), (8, 32, 38, 22)),
    ("young", 14, (18, 25), (0, 6), (0, 0, 20, 80)),
    ("salaried", 24, (26, 59), (1, 20), (0, 30, 40, 30)),
    ("business", 10, (28, 66), (1, 25), (15, 40, 35, 10)),
    ("new", 14, (20, 58), (0, 0.9), (0, 10, 30, 60)),
)

# Value inputs per intended tier: balance, products, net annual value (profit minus cost to serve).
TIER_RANGES: dict[ValueTier, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    ValueTier.PLATINUM: ((900_000, 4_000_000), (4, 8), (12_000, 80_000)),
    ValueTier.GOLD: ((280_000, 750_000), (3, 6), (2_000, 15_000)),
    ValueTier.SILVER: ((60_000, 260_000), (2, 4), (0, 5_000)),
    ValueTier.STANDARD: ((0, 45_000), (1, 3), (-3_000, 2_000)),
}

UK_MOBILE_PREFIXES = ("7911", "7912", "7400", "7890", "7767", "7957")

TEAMS = ("Retail A", "Retail B", "Premier", "Silver Line", "Collections")

TOPICS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    # queue -> (topic, subject, dispositions)
    "retail": (
        ("payments", "Standing order did not go out", ("resolved", "payment_reissued")),
        ("statements", "Copy of last year's statements", ("resolved", "sent_by_post")),
        ("account", "Change of address", ("resolved", "details_updated")),
        ("digital", "Locked out of the mobile app", ("resolved", "password_reset")),
        ("savings", "Best rate for an easy-access saver", ("resolved", "product_info_sent")),
    ),
    "cards": (
        ("cards", "Replacement card has not arrived", ("resolved", "card_reissued")),
        ("card_fraud", "Payment I don't recognise", ("fraud_claim_opened", "card_blocked")),
        ("cards", "Raise my credit limit", ("resolved", "referred")),
    ),
    "mortgages": (
        ("mortgages", "Remortgage options when my fix ends", ("appointment_booked", "resolved")),
        ("mortgages", "Overpayment without a charge", ("resolved",)),
        ("loans", "Personal loan for a new kitchen", ("application_started", "resolved")),
    ),
    "private-banking": (
        ("wealth", "Portfolio review before year end", ("appointment_booked", "resolved")),
        ("payments", "Large transfer to a solicitor", ("resolved", "payment_released")),
        ("private_banking", "Gift to grandchildren: best structure", ("referred", "resolved")),
    ),
    "seniors": (
        ("account", "Help reading my statement", ("resolved",)),
        ("digital", "Setting up the app with my daughter", ("resolved", "home_visit_booked")),
        ("payments", "Power of attorney for my son", ("referred", "resolved")),
        ("cards", "Card swallowed by the cash machine", ("card_reissued", "resolved")),
    ),
    "collections": (
        ("collections", "Payment plan for my overdraft", ("arrangement_agreed", "resolved")),
        ("collections", "Missed a loan payment", ("arrangement_agreed", "breathing_space")),
    ),
}

CHAT_LINES: tuple[tuple[str, str], ...] = (
    ("Hello, I need some help please.", "Hello, thanks for getting in touch. I can help with that."),
    ("Can you check what happened?", "Of course. I can see it on your account now."),
    ("Thank you, that's sorted then?", "Yes, it's all done. Is there anything else today?"),
    ("No, that's everything. Thanks!", "You're welcome. Have a lovely day."),
)


# Wrap-up codes and canned responses per queue (the agent desktop reads Queue.settings). The codes
# are the ones the generated history uses, so reports over old and new interactions line up.
DESKTOP_CANNED: dict[str, tuple[tuple[str, str], ...]] = {
    "retail": (
        ("Standing order", "I can see the standing order; I've set it to go out again today."),
        ("Statements", "Your statements will be in the app within the hour, and by post in 3-5 days."),
    ),
    "cards": (
        ("Card on its way", "Your new card is on its way and should arrive within 3-5 working days."),
        ("Card blocked", "I've blocked the card, so nobody can use it. A replacement is on its way."),
        ("Fraud claim", "I've opened a claim for the payment you don't recognise; expect news in 10 days."),
    ),
    "mortgages": (
        ("Appointment", "I've booked you a mortgage adviser appointment; the details are in your email."),
        ("Overpayment", "You can overpay up to 10% of the balance a year without an early repayment charge."),
    ),
    "private-banking": (
        ("Relationship manager", "Your relationship manager will call you back today before 5pm."),
    ),
    "seniors": (
        ("Take your time", "Please take all the time you need; I'm here and I'm not in a hurry."),
        ("Branch visit", "If you'd prefer, we can book you a visit at your nearest branch."),
    ),
    "collections": (
        ("Breathing space", "We'll pause interest and charges for 60 days while we agree a plan together."),
    ),
}
