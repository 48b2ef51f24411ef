"""The sales-lead contract, v1: a company profile enriched from its own web pages.

Usage::

    from contracts.lead import Lead
    lead = Lead.model_validate_json(answer, strict=True)
    lead.website_domain, lead.headquarters_country   # "nordpack.se", "SE"

Sources are company home pages, "about us" pages, imprints and press releases,
as HTML with navigation, cookie banners and footers. ``summary`` is the
company's own sentence about itself, copied rather than paraphrased, so
grounding can trace it to the source. Field constraints reject malformed values;
the rules below reject well-formed values that cannot be right. Each raises a
:class:`~pydantic_core.PydanticCustomError` with its own ``type``, located at the
field to fix, and all cross-field problems are reported together:

============================== ==================== ========================================
type                           loc                  rule
============================== ==================== ========================================
invalid_domain                 website_domain       a bare lowercase host name: no scheme,
                                                    path, port or leading "www."
unknown_country                headquarters_country an ISO 3166-1 alpha-2 code
                                                    (ISO_3166_ALPHA2)
founded_in_future              founded_year         not after the current year
invalid_phone                  contact_phone        digits with + ( ) . - / and spaces, 6 to
                                                    15 digits
contact_email_domain_mismatch  contact_email        the e-mail's domain is the website's
                                                    domain, or one is a subdomain of the other
duplicate_product              products.<i>         each product is listed once
============================== ==================== ========================================

Grounding policy (``GroundingPolicy.required``): the company name, and the contact e-mail,
phone and founding year when given, must appear on the page. Invented contact details
are the costliest mistake in a sales lead.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts._common import SAMPLES_DIR, Email, field_error, raise_all
from contracts.invoice import Text
from streams.contract import Contract, Example, GroundingPolicy, Prompt

__all__ = ["ISO_3166_ALPHA2", "LEAD_V1", "EmployeeCountRange", "FundingStage", "Lead"]

#: ISO 3166-1 alpha-2 codes of the 249 officially assigned countries and territories
#: (as in the tz database's iso3166.tab). User-assigned codes such as XK are left out.
ISO_3166_ALPHA2: Final = frozenset(
    # A block of codes reads like the ISO table; a 249-line list literal would not.
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905
)

EmployeeCountRange = Literal[
    "1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+"
]
FundingStage = Literal[
    "bootstrapped",
    "pre-seed",
    "seed",
    "series-a",
    "series-b",
    "series-c+",
    "private-equity",
    "public",
]

_DOMAIN = re.compile(r"(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})")
_PHONE = re.compile(r"\+?[0-9(][0-9 ()./-]*[0-9]")


def _valid_domain(host: str) -> str:
    if not _DOMAIN.fullmatch(host) or host.startswith("www.") or len(host) > 253:
        raise PydanticCustomError(
            "invalid_domain",
            "website_domain {domain} is not a bare host name; write it lowercase without "
            "scheme, www., port or path (e.g. https://www.Acme.co.uk/about is acme.co.uk)",
            {"domain": host},
        )
    return host


def _known_country(code: str) -> str:
    if code not in ISO_3166_ALPHA2:
        raise PydanticCustomError(
            "unknown_country",
            "country {country} is not an ISO 3166-1 alpha-2 code (e.g. DE, US, GB, FR, JP)",
            {"country": code},
        )
    return code


def _not_in_future(year: int) -> int:
    this_year = date.today().year
    if year > this_year:
        raise PydanticCustomError(
            "founded_in_future",
            "founded_year {year} is after the current year {this_year}",
            {"year": year, "this_year": this_year},
        )
    return year


def _valid_phone(phone: str) -> str:
    digits = sum(c.isdigit() for c in phone)
    if not _PHONE.fullmatch(phone) or not 6 <= digits <= 15:
        raise PydanticCustomError(
            "invalid_phone",
            "contact_phone {phone} is not a phone number: digits with + ( ) . - / and "
            "spaces only, 6 to 15 digits, no extension or label",
            {"phone": phone},
        )
    return phone


Domain = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_valid_domain)]
CountryCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_known_country)
]
FoundedYear = Annotated[int, Field(ge=1800), AfterValidator(_not_in_future)]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_valid_phone)
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Sentence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=400)]


class Lead(BaseModel):
    """A company profile for sales: who they are, where, how big, what they sell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    company_name: Text = Field(
        description="The company's name as the page writes it (legal or trading name), "
        "without tagline."
    )
    website_domain: Domain = Field(
        description="The company's own web domain, lowercase, without scheme, www., port or "
        "path (e.g. acme.co.uk)."
    )
    industry: ShortText = Field(
        description="The company's industry or market in a few words, as the page puts it "
        "(e.g. logistics software)."
    )
    employee_count_range: EmployeeCountRange | None = Field(
        default=None,
        description="Company size bucket by number of employees; null when the page states "
        "neither a size nor a headcount.",
    )
    headquarters_country: CountryCode = Field(
        description="ISO 3166-1 alpha-2 code of the country of the head office, two capital "
        "letters (e.g. DE)."
    )
    founded_year: FoundedYear | None = Field(
        default=None, description="Year the company was founded; null when not stated."
    )
    contact_email: Email | None = Field(
        default=None,
        description="A general or sales contact e-mail at the company's domain, as printed; "
        "null when none is given.",
    )
    contact_phone: Phone | None = Field(
        default=None,
        description="The main or sales phone number as printed, without label or extension; "
        "null when none is given.",
    )
    products: list[ShortText] = Field(
        default_factory=list,
        description="Names of the company's products or services as the page names them, in "
        "page order, each once; empty when none is named.",
    )
    funding_stage: FundingStage | None = Field(
        default=None,
        description="Latest funding stage the page states (bootstrapped, pre-seed, seed, "
        "series-a, series-b, series-c+ for C or later, private-equity, public); null when "
        "not stated.",
    )
    summary: Sentence = Field(
        description="One sentence from the page that says what the company does, copied word "
        "for word (not paraphrased or translated)."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        raise_all(type(self).__name__, [*self._email_errors(), *self._product_errors()])
        return self

    def _email_errors(self) -> list[InitErrorDetails]:
        if self.contact_email is None:
            return []
        email_domain = self.contact_email.rpartition("@")[2].lower()
        site = self.website_domain
        if (
            email_domain == site
            or email_domain.endswith(f".{site}")
            or site.endswith(f".{email_domain}")
        ):
            return []
        return [
            field_error(
                "contact_email_domain_mismatch",
                "contact_email {email} is not at the company's domain {domain}; give an "
                "address at {domain} or null (no personal, agency or free-mail addresses)",
                ("contact_email",),
                self.contact_email,
                email=self.contact_email,
                domain=site,
            )
        ]

    def _product_errors(self) -> list[InitErrorDetails]:
        errors = []
        seen: dict[str, int] = {}
        for index, product in enumerate(self.products):
            key = product.casefold()
            if key in seen:
                errors.append(
                    field_error(
                        "duplicate_product",
                        "products[{index}] {product} repeats products[{first}]; list each "
                        "product once",
                        ("products", index),
                        product,
                        index=index,
                        first=seen[key],
                        product=product,
                    )
                )
            else:
                seen[key] = index
        return errors


INSTRUCTIONS = """\
Extract a profile of the one company the web page is about into a JSON object that \
matches the schema.

Rules:
1. Use only what the page states. Do not guess, look up or invent values. Leave optional \
fields null (or products empty) when the page does not give them. Ignore navigation, \
cookie banners, footers of other sites, ads and links to other companies.
2. company_name: the company's name as the page writes it, legal form included when \
printed ("Nordpack AB"), without tagline.
3. website_domain: the company's own domain, lowercase, without https://, www., port or \
path: "https://www.Nordpack.se/en/about" is nordpack.se.
4. industry: the company's industry or market in a few words taken from the page.
5. employee_count_range: the bucket the page's company size or headcount falls in: 1-10, \
11-50, 51-200, 201-500, 501-1000, 1001-5000, 5001-10000, 10001+. Null when the page \
states neither.
6. headquarters_country: ISO 3166-1 alpha-2 code of the head office's country (Germany is \
DE, United Kingdom is GB, United States is US, Switzerland is CH). Not a branch office.
7. founded_year: the year founded ("since 1987", "gegründet 2011"); not a year of \
incorporation of a parent company, a product launch or a copyright notice.
8. contact_email and contact_phone: a general, sales or press contact of the company \
itself, as printed; the phone without label or extension. An e-mail must be at the \
company's own domain: leave out personal addresses of other domains.
9. products: the names of the company's own products or services, as the page names \
them, in page order, each once.
10. funding_stage: the latest stage the page states: bootstrapped (self-funded), \
pre-seed, seed, series-a, series-b, series-c+ (Series C or later), private-equity \
(PE-backed or majority owned by an investor), public (listed on a stock exchange).
11. summary: copy the one sentence of the page that best says what the company does, \
word for word and in the page's language. Do not summarise or translate.
"""

_EXAMPLE_ABOUT = """\
<nav><a href="/">Home</a> | <a href="/en/about">About</a> | <a href="/careers">Careers</a></nav>
<h1>About Nordpack</h1>
<p>Nordpack AB designs recyclable transport packaging for e-commerce and food retail.</p>
<p>Founded in 2014 in Gothenburg, Sweden. Company size: 51-200 employees. Our product \
lines are <b>FlexCrate</b> and <b>CoolLiner</b>. In 2023 we closed a Series A round.</p>
<footer>Nordpack AB · Lindholmsallén 10 · Göteborg · info@nordpack.se · +46 31 760 22 00 \
· www.nordpack.se</footer>
"""

_EXAMPLE_PRESS = """\
PRESS RELEASE — Lyon, 5 March 2024
Atelier Vélonova, the French maker of cargo e-bikes, opens its second factory.
About Atelier Vélonova: Atelier Vélonova builds electric cargo bikes for families and \
urban delivery fleets. Headquarters: Lyon, France. Press contact: presse@velonova.fr
velonova.fr
"""

LEAD_V1: Final = Contract(
    name="lead",
    version=1,
    model=Lead,
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document=_EXAMPLE_ABOUT,
                record={
                    "company_name": "Nordpack AB",
                    "website_domain": "nordpack.se",
                    "industry": "transport packaging",
                    "employee_count_range": "51-200",
                    "headquarters_country": "SE",
                    "founded_year": 2014,
                    "contact_email": "info@nordpack.se",
                    "contact_phone": "+46 31 760 22 00",
                    "products": ["FlexCrate", "CoolLiner"],
                    "funding_stage": "series-a",
                    "summary": "Nordpack AB designs recyclable transport packaging for "
                    "e-commerce and food retail.",
                },
            ),
            Example(
                document=_EXAMPLE_PRESS,
                record={
                    "company_name": "Atelier Vélonova",
                    "website_domain": "velonova.fr",
                    "industry": "cargo e-bikes",
                    "employee_count_range": None,
                    "headquarters_country": "FR",
                    "founded_year": None,
                    "contact_email": "presse@velonova.fr",
                    "contact_phone": None,
                    "products": [],
                    "funding_stage": None,
                    "summary": "Atelier Vélonova builds electric cargo bikes for families "
                    "and urban delivery fleets.",
                },
            ),
        ),
    ),
    compatibility="BACKWARD",
    # Contact details a model could invent must be on the page; a missing optional
    # value is not checked. The domain may come from links the text does not show.
    grounding=GroundingPolicy(
        required=("company_name", "contact_email", "contact_phone", "founded_year")
    ),
    description="A sales lead: a company's name, web domain, industry, size bucket, "
    "head-office country (ISO 3166-1 alpha-2), founding year, contact, products, funding "
    "stage and its own one-sentence description.",
    # The examples keep the Avro namespace they were first published under.
    namespace="contracts.lead.v1",
    samples=SAMPLES_DIR / "lead",
)
