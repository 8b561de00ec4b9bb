"""Sample SMS history in the exact JSON shape of OVH API v1, and the CSV export renderings.

Everything here is pure and deterministic for a given seed and ``now``, so tests and the demo can
rely on the same data run after run. The shapes follow docs/ovh-api.md:
``sms.Outgoing`` and ``sms.Incoming`` objects, datetimes as ISO 8601 strings with the Paris offset.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "INCOMING_CSV_HEADER",
    "OUTGOING_CSV_HEADER",
    "PARIS",
    "ServiceData",
    "description_dlr",
    "format_api_datetime",
    "format_csv_datetime",
    "generate_sample_data",
    "incoming_csv",
    "operator_code",
    "outgoing_csv",
    "sms_parts",
]

PARIS = ZoneInfo("Europe/Paris")

OUTGOING_CSV_HEADER = (
    "id",
    "date",
    "sender",
    "receiver",
    "ptt",
    "operatorCode",
    "descriptionDlr",
    "tag",
    "message",
    "sentAt",
    "deliveredAt",
)
# ASSUMPTION: no example of the incoming CSV was found (docs/ovh-api.md, "CSV export": UNKNOWN); this column
# set mirrors the sms.Incoming object so that clients at least exercise "parse by header name".
INCOMING_CSV_HEADER = ("id", "date", "sender", "tag", "message", "credits")

_OPERATOR_CODES = ("20801", "20810", "20815", "20820")

# GSM 03.38 basic alphabet; characters outside it force UCS-2 encoding (70 chars per SMS instead of 160).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table characters cost two septets (escape + char).
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(slots=True)
class ServiceData:
    """The history of one SMS service: records keyed by id, in the API JSON shape."""

    outgoing: dict[int, dict[str, Any]] = field(default_factory=dict)
    incoming: dict[int, dict[str, Any]] = field(default_factory=dict)


def format_api_datetime(moment: datetime) -> str:
    """Render an aware datetime the way the API does (assumed): Paris offset, whole seconds."""
    return moment.astimezone(PARIS).isoformat(timespec="seconds")


def format_csv_datetime(moment: datetime, zone: ZoneInfo = PARIS) -> str:
    """Render an aware datetime as in the CSV export: local time (Paris, assumed), no zone, no ``T``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def sms_parts(message: str) -> int:
    """Return how many SMS parts ``message`` needs (GSM-7 160/153, else UCS-2 70/67 per part)."""
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in message):
        units = sum(2 if char in _GSM7_EXTENSION else 1 for char in message)
        single, multi = 160, 153
    else:
        # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
        units = len(message.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def operator_code(receiver: str) -> str:
    """Return a plausible, stable MCC+MNC for a receiver number (derived from a checksum)."""
    return _OPERATOR_CODES[zlib.crc32(receiver.encode("utf-8")) % len(_OPERATOR_CODES)]


def description_dlr(ptt: int) -> str:
    """Return the CSV ``descriptionDlr`` text for a ptt code."""
    if ptt == 4:
        return "Success"
    if ptt in (1, 2, 3):
        return "Pending"
    return "Failed"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_datetime_or_empty(value: object, zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not value:
        return ""
    return format_csv_datetime(datetime.fromisoformat(value), zone)


def _export_date(record: Mapping[str, Any], field: str, zone: ZoneInfo) -> str:
    # An SMS not sent yet has no send time: its creation time stands in.
    value = record.get(field) or record["creationDatetime"]
    return format_csv_datetime(datetime.fromisoformat(value), zone)


def outgoing_csv(
    records: Iterable[Mapping[str, Any]], *, zone: ZoneInfo = PARIS, date_field: str = "creationDatetime"
) -> bytes:
    """Render outgoing records as the export CSV (docs/ovh-api.md, "CSV export").

    Text columns (sender, descriptionDlr, tag, message) are always quoted with inner quotes doubled
    and raw newlines kept; id, date, receiver, ptt and operatorCode are not quoted.
    ASSUMPTION: UTF-8 without BOM and ``\\r\\n`` record separators (RFC 4180 style); the real encoding
    and line endings are UNKNOWN, so clients must use a real CSV parser anyway.
    The zone of the dates and the meaning of ``date`` are UNKNOWN too: by default Paris local time
    and the creation time; ``zone`` and ``date_field`` (e.g. ``sentAt``) give the other answers.
    """
    lines = [";".join(OUTGOING_CSV_HEADER)]
    for record in records:
        receiver = str(record["receiver"])
        ptt = int(record["ptt"])
        lines.append(
            ";".join(
                (
                    str(record["id"]),
                    _export_date(record, date_field, zone),
                    _quoted(str(record["sender"])),
                    receiver,
                    str(ptt),
                    operator_code(receiver),
                    _quoted(description_dlr(ptt)),
                    _quoted(str(record["tag"])),
                    _quoted(str(record["message"])),
                    _csv_datetime_or_empty(record.get("sentAt"), zone),
                    _csv_datetime_or_empty(record.get("deliveredAt"), zone),
                )
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def incoming_csv(records: Iterable[Mapping[str, Any]], *, zone: ZoneInfo = PARIS) -> bytes:
    """Render incoming records as an export CSV (column set is an assumption, see the header)."""
    lines = [";".join(INCOMING_CSV_HEADER)]
    for record in records:
        lines.append(
            ";".join(
                (
                    str(record["id"]),
                    format_csv_datetime(datetime.fromisoformat(record["creationDatetime"]), zone),
                    _quoted(str(record["sender"])),
                    _quoted(str(record["tag"])),
                    _quoted(str(record["message"])),
                    str(float(record["credits"])),
                )
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# --- sample data generation -------------------------------------------------------------------------

_FIRST_NAMES = ("Camille", "Léa", "Hugo", "Chloé", "Noël", "Zoé", "Maël", "Inès", "Jérôme", "Agathe")
_SHOPS = ("MaBoutique", "PHARMA75", "DrMartin", "InfoColis", "GarageDuPont", "Boulangerie")
_SHORT_NUMBERS = ("36184", "38001")
_TAGS = ("", "", "", "rappel-rdv", "otp", "facturation", "campagne-été", "Noël 2025", "promo;vip")


def _template_messages(rng: random.Random) -> str:
    name = rng.choice(_FIRST_NAMES)
    number = rng.randint(1000, 99999)
    day = rng.randint(1, 28)
    hour = rng.randint(8, 18)
    templates = (
        f"Bonjour {name}, votre commande n°{number} est prête. Retrait en magasin jusqu'au {day}/06.\nSTOP 36184",
        f"Rappel : RDV le {day}/05 à {hour}h30 chez le Dr Martin. Merci de prévenir en cas d'empêchement.",
        f"Votre code de vérification est {number:06d}. Il expire dans 10 minutes.",
        "-20% sur tout le rayon été ce week-end ☀️ ! Profitez-en vite 🛍️\nSTOP 36184",
        f'Votre colis "{number}" a été expédié ; suivi : https://suivi.example.fr/{number}',
        f'Offre "Spéciale Fête des mères" : 2 bouquets achetés, le 3e offert ; valable jusqu\'au {day}/05.',
        f"=== Alerte météo === Vigilance orange orages, {name}, restez prudents.",
        f"+{day} points fidélité crédités sur votre carte ! Solde : {number} points.",
        f"=SOMME({number}) : votre relevé, {name}, est disponible.",
        "Bonne année 🎉 Toute l'équipe vous souhaite ses meilleurs vœux !",
        "Livraison prévue demain entre 8h et 12h. Répondez 1 pour confirmer, 2 pour reporter.",
        f"Votre facture de {number / 100:.2f} € est disponible dans votre espace client.",
        f"Le cabinet sera fermé le lundi {day}/07.\nEn cas d'urgence, composez le 15.",
        f"Cher {name}, nous vous informons que les conditions générales de votre contrat évoluent à "
        "compter du 1er juillet. Les nouvelles conditions, le détail des tarifs et la procédure de "
        "résiliation sont disponibles dans votre espace client ou en agence ; pour toute question, "
        'notre service "Relations clients" reste joignable du lundi au vendredi, de 9h à 18h, au '
        "01 23 45 67 89. Merci de votre confiance.\nSTOP 36184",
        f"Votre mot de passe a été modifié le {day}/04 à {hour}:12. Si ce n'est pas vous, contactez-nous.",
    )
    return rng.choice(templates)


_INCOMING_MESSAGES = (
    "STOP",
    "Oui",
    "1",
    "2",
    "Merci beaucoup 😊",
    "Je serai en retard de 10 min, désolé",
    "Pouvez-vous me rappeler ? Mon numéro a changé : 06 12 34 56 78",
    "NON; merci",
    '"OK" pour demain',
    "Bonjour,\nje confirme le rendez-vous.\nCordialement, Agathe",
    "=)",
    "C'est noté, à jeudi !",
)

# Weighted final ptt codes: mostly delivered, a realistic tail of failures.
_FINAL_PTTS = (4, 5, 6, 24, 1, 23, 8, 25, 26, 28)
_FINAL_WEIGHTS = (82, 5, 3, 3, 2, 2, 1, 1, 1, 0.5)
_DELIVERY_RECEIPT = {4: 1, 1: 4, 2: 4, 3: 8, 6: 16}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _french_mobile(rng: random.Random) -> str:
    return f"+33{rng.choice('67')}{rng.randint(0, 99_999_999):08d}"


@dataclass(slots=True)
class _PlannedOutgoing:
    service: str
    created: datetime
    sender: str
    receiver: str
    message: str
    tag: str
    batch_id: str | None


def _plan_outgoing(
    rng: random.Random, services: Sequence[str], count: int, start: datetime, span: timedelta
) -> list[_PlannedOutgoing]:
    receivers = [_french_mobile(rng) for _ in range(max(10, count // 3))]
    planned: list[_PlannedOutgoing] = []
    recent = min(span, timedelta(hours=72))
    while len(planned) < count:
        service = rng.choice(services)
        # A share of the traffic is recent, so that the sample always holds SMS still in flight.
        window = recent if rng.random() < 0.08 else span
        created = start + span - window * rng.random()
        sender = rng.choice(_SHOPS) if rng.random() < 0.85 else rng.choice(_SHORT_NUMBERS)
        message = _template_messages(rng)
        tag = rng.choice(_TAGS)
        if rng.random() < 0.12:
            # A campaign: one text, one batch id, many receivers within a few seconds.
            batch_id: str | None = _uuid(rng)
            size = min(rng.randint(3, 15), count - len(planned))
            for index in range(size):
                planned.append(
                    _PlannedOutgoing(
                        service,
                        min(created + timedelta(seconds=index * rng.uniform(0.2, 2.0)), start + span),
                        sender,
                        rng.choice(receivers),
                        message,
                        tag,
                        batch_id,
                    )
                )
        else:
            batch_id = _uuid(rng) if rng.random() < 0.5 else None
            planned.append(_PlannedOutgoing(service, created, sender, rng.choice(receivers), message, tag, batch_id))
    planned.sort(key=lambda item: item.created)
    return planned


def _outgoing_record(rng: random.Random, sms_id: int, plan: _PlannedOutgoing, now: datetime) -> dict[str, Any]:
    created = plan.created.replace(microsecond=0)
    age = now - created
    differed = rng.choice((15, 60, 1440)) if age > timedelta(days=2) and rng.random() < 0.05 else 0
    sent: datetime | None = created + timedelta(minutes=differed, seconds=rng.randint(1, 20))
    pending_chance = 0.8 if age < timedelta(minutes=10) else 0.35 if age < timedelta(hours=72) else 0.0
    if rng.random() < pending_chance:
        ptt = rng.choice((1, 2, 3))
    else:
        ptt = rng.choices(_FINAL_PTTS, weights=_FINAL_WEIGHTS)[0]
    delivered: datetime | None = None
    if ptt == 4 and sent is not None:
        delivered = sent + timedelta(seconds=rng.randint(1, 90))
    if sent is not None and sent > now:
        sent = None
    if delivered is not None and delivered > now:
        # Delivery cannot be in the future: the SMS is still in flight.
        delivered, ptt = None, 3
    parts = sms_parts(plan.message)
    low_cost = rng.random() < 0.1
    return {
        "id": sms_id,
        "creationDatetime": format_api_datetime(created),
        "sentAt": None if sent is None else format_api_datetime(sent),
        "deliveredAt": None if delivered is None else format_api_datetime(delivered),
        "sender": plan.sender,
        "receiver": plan.receiver,
        "message": plan.message,
        "messageLength": len(plan.message),
        "numberOfSms": parts,
        "credits": parts * (0.5 if low_cost else 1.0),
        "ptt": ptt,
        "deliveryReceipt": _DELIVERY_RECEIPT.get(ptt, 2),
        "differedDelivery": differed,
        "tag": plan.tag,
        "tariffCode": "FR-LOW" if low_cost else "FR-STD",
        "batchID": plan.batch_id,
        "messageID": _uuid(rng) if sent is not None else None,
    }


def generate_sample_data(
    *,
    services: Sequence[str] = ("sms-demo12345-1",),
    outgoing: int = 200,
    incoming: int = 40,
    days: int = 90,
    seed: int = 1,
    now: datetime | None = None,
) -> dict[str, ServiceData]:
    """Build a realistic, deterministic SMS history (same seed and ``now``, same data).

    ``outgoing`` and ``incoming`` are totals spread over all ``services``; creation times are spread
    over the ``days`` before ``now`` and ids grow with time, with gaps, from one global counter (as
    OVH ids look global). Records younger than 72 h are partly still pending (ptt 1, 2 or 3).
    ``now`` defaults to the current time and must be timezone-aware if given.
    """
    if not services:
        raise ValueError("at least one service name is required")
    if now is None:
        now = datetime.now(tz=PARIS)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not security
    span = timedelta(days=days)
    start = now - span
    result = {name: ServiceData() for name in services}

    next_id = 10_000_000_000 + rng.randint(0, 999_999)
    for plan in _plan_outgoing(rng, services, outgoing, start, span):
        # Other customers' SMS consume ids in between, hence the gaps.
        next_id += rng.randint(1, 4000)
        result[plan.service].outgoing[next_id] = _outgoing_record(rng, next_id, plan, now)

    repliers = [_french_mobile(rng) for _ in range(max(5, incoming // 2))]
    incoming_times = sorted(start + span * rng.random() for _ in range(incoming))
    next_incoming_id = 300_000_000 + rng.randint(0, 99_999)
    for created in incoming_times:
        next_incoming_id += rng.randint(1, 500)
        service = rng.choice(services)
        result[service].incoming[next_incoming_id] = {
            "id": next_incoming_id,
            "creationDatetime": format_api_datetime(created.replace(microsecond=0)),
            "credits": 0.0 if rng.random() < 0.2 else 1.0,
            "message": rng.choice(_INCOMING_MESSAGES),
            "sender": rng.choice(repliers),
            "tag": rng.choice(("", "", "", "réponses", "stop")),
        }
    return result
