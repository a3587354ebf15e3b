"""Write ``benchmarks/data/pii_faker.jsonl``: a six-entity corpus made with Faker.

Each row is one sentence holding two values Faker made (en_US): e-mail addresses,
phone numbers in every format Faker writes (``+1-311-372-4764x123``,
``(311)372-4764``, ``311.372.4764``, ...), credit cards of every scheme Faker
issues (Mastercard's 2-series 2221-2720 included), SSNs, IPv4 addresses and
IBANs, with their offsets.  The values are fake; the file is committed so that
``pii_accuracy.py`` needs no Faker at run time (Faker is needed only to write it
again: ``.venv/bin/pip install faker``).

    .venv/bin/python benchmarks/make_faker_corpus.py [--rows 600] [--seed 20]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "data" / "pii_faker.jsonl"

TEMPLATES = [
    "Please contact {0} or reach the team on {1} before Friday.",
    "The record lists {0}; the second field holds {1}.",
    "Update the account: old value {0}, new value {1}.",
    "Thanks! I sent {0} to the desk, and they replied with {1}.",
    "Customer note - {0} (primary), {1} (backup).",
    "For verification we have {0} and {1} on file.",
]


def values(fake: Any, rng: random.Random) -> dict[str, Callable[[], str]]:
    """A maker of values for each entity."""
    cards = ["mastercard", "mastercard", "visa16", "amex", "discover"]
    return {
        "EMAIL_ADDRESS": fake.email,
        "PHONE_NUMBER": fake.phone_number,
        "CREDIT_CARD": lambda: fake.credit_card_number(card_type=rng.choice(cards)),
        "US_SSN": fake.ssn,
        "IP_ADDRESS": fake.ipv4_public,
        "IBAN_CODE": fake.iban,
    }


def main() -> None:
    from faker import Faker

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--seed", type=int, default=20)
    args = ap.parse_args()
    Faker.seed(args.seed)
    fake = Faker("en_US")
    rng = random.Random(args.seed)
    make = values(fake, rng)
    kinds = sorted(make)
    with OUT.open("w", encoding="utf-8") as out:
        for i in range(args.rows):
            pair = [kinds[i % len(kinds)], rng.choice(kinds)]
            vals = [str(make[k]()) for k in pair]
            template = TEMPLATES[i % len(TEMPLATES)]
            head, _, rest = template.partition("{0}")
            middle, _, tail = rest.partition("{1}")
            text = head + vals[0] + middle + vals[1] + tail
            a = len(head)
            b = a + len(vals[0]) + len(middle)
            entities = [
                {"type": pair[0], "start": a, "end": a + len(vals[0])},
                {"type": pair[1], "start": b, "end": b + len(vals[1])},
            ]
            row = {"id": f"faker-{i:04d}", "variant": "faker", "text": text, "entities": entities}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {args.rows} rows to {OUT}")


if __name__ == "__main__":
    main()
