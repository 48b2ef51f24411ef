"""How documents write a currency when they do not print its ISO 4217 code.

Data, not logic: extend the table when a contract meets a new symbol. Ambiguous
symbols are listed under every code they can mean ("$", "¥", "kr"), because
grounding asks whether the currency is visible in the text, not which one it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["CURRENCY_ALIASES"]

#: ISO 4217 code -> symbols and names that stand for it in documents (any case).
CURRENCY_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "USD": ("$", "US$", "U.S. dollars", "US dollars", "dollars"),
    "EUR": ("€", "euro", "euros"),
    "GBP": ("£", "pound sterling", "pounds sterling", "sterling"),
    "JPY": ("¥", "円", "yen"),
    "CNY": ("¥", "元", "RMB", "yuan", "renminbi"),
    "CHF": ("Fr.", "SFr.", "Franken", "francs suisses", "Swiss francs"),
    "CAD": ("$", "C$", "CA$", "Canadian dollars"),
    "AUD": ("$", "A$", "AU$", "Australian dollars"),
    "NZD": ("$", "NZ$", "New Zealand dollars"),
    "HKD": ("HK$",),
    "SGD": ("S$",),
    "MXN": ("MX$", "pesos"),
    "BRL": ("R$", "reais"),
    "INR": ("₹", "Rs.", "rupees"),
    "KRW": ("₩",),
    "RUB": ("₽", "\u0440\u0443\u0431."),  # Cyrillic "rub."
    "PLN": ("zł", "złoty", "zloty"),
    "CZK": ("Kč",),
    "HUF": ("Ft",),
    "SEK": ("kr", "kronor"),
    "NOK": ("kr", "kroner"),
    "DKK": ("kr", "kr.", "kroner"),
    "ISK": ("kr",),
    "TRY": ("₺",),
    "ILS": ("₪",),
    "NGN": ("₦",),
    "VND": ("₫",),
    "PHP": ("₱",),
    "UAH": ("₴",),
    "THB": ("฿",),
    "KZT": ("₸",),
}
