"""Friendly labels for the codes the system stores (topics, languages, states, wrap-up codes, event
kinds, channels): the one helper every template uses, as the Jinja filter ``label``.

Codes stay codes in SQL and the JSON API; only what a person reads is turned into words. An unknown
code still reads well ("card_blocked" -> "Card blocked"), so a new topic needs no entry here.
"""

from __future__ import annotations

# ISO 639-1 codes a bank's customers commonly give; anything else is shown upper-cased ("XH").
LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "bn": "Bengali",
    "cy": "Welsh",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "gd": "Scottish Gaelic",
    "gu": "Gujarati",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pa": "Punjabi",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "so": "Somali",
    "sv": "Swedish",
    "ta": "Tamil",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}

# Codes whose plain spelling-out would read wrong.
SPECIAL: dict[str, str] = {
    "wrap_up": "Wrap-up",
    "follow_up_needed": "Follow-up needed",
    "not_responding": "Not responding",
    "sms": "SMS",
    "ivr": "IVR",
    "csat": "CSAT",
    "nps": "NPS",
    "ces": "CES",
    "faq": "FAQ",
    "atm": "ATM",
    "kyc": "KYC",
    "dtmf": "DTMF",
    "offer_created": "Offered to an agent",
    "state_changed": "State changed",
    "disposition_set": "Wrap-up code",
    "chat_message": "Chat message",
    "interaction_created": "Contact started",
}


def label(value: object, kind: str | None = None) -> str:
    """``value`` as a person reads it; ``kind="language"`` for language codes ("pl" -> "Polish")."""
    if value is None or value == "":
        return "—"
    code = str(getattr(value, "value", value))
    if kind == "language":
        base = code.split("-")[0].lower()
        return LANGUAGES.get(base, code.upper())
    if code.lower() in SPECIAL:
        return SPECIAL[code.lower()]
    words = code.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else code
