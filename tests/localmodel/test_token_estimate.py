"""The offline token estimate is an upper bound of the real tokenizer's count.

The budget gate and the spend reservation trust :func:`streams.budget.estimate_tokens`
before any call is made, so an input the estimate undercounts would buy tokens past
``max_input_tokens`` and the spend cap. This checks it against the embedded model's own
tokenizer (llama.cpp's ``/tokenize``, Qwen2.5's byte-level BPE) on every sample of the
three contracts, the hostile corpus, and text in other scripts and character classes;
and the whole first-attempt prompt, through the server's chat template, against the
estimate the extractor makes of it.

Not covered, and measured: long strings of *random* ASCII letters (base64, hex keys,
random words) tokenize at 1.5-3 characters a token against the estimate's 4, so the
estimate is 0.4-0.9 of the real count there. Those are not in the texts below.
"""

from __future__ import annotations

import httpx
import pytest

from contracts import SAMPLES_DIR
from streams.attempts import build_messages
from streams.budget import estimate_tokens
from streams.contract import resolve
from streams.envelope import Document
from streams.localmodel import LocalModelServer
from tests.integration.test_hostile_corpus import _bombs, _corpus

pytestmark = [pytest.mark.slow, pytest.mark.integration]

#: Text in other scripts and character classes: natural ones, and the ones a byte-level
#: BPE falls back to bytes for (private use, outside the BMP).
SCRIPTS = {
    "cjk": "発票合計金額請求書" * 200,
    "rare cjk (astral)": "\U00020000\U00020001\U00020002\U0002a6a5" * 200,
    "private use": "\ue000\ue001\uf8ff" * 300,
    "emoji": "\U0001f600\U0001f389\U0001f680\U0001f4a1\U0001f525" * 200,
    "emoji zwj": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466" * 100,
    "math letters": "\U0001d400\U0001d401\U0001d402\U0001d7ce\U0001d7cf" * 200,
    "combining marks": "e\u0301a\u0300o\u0308" * 300,
    "arabic": "فاتورة المجموع " * 100,
    "cyrillic": "Счёт-фактура итого " * 100,
    "greek": "Τιμολόγιο σύνολο " * 100,
    "devanagari": "चालान कुल " * 100,
    "thai": "ใบแจ้งหนี้รวม " * 100,
    "korean": "송장 합계 " * 100,
    "digits": "1234567890" * 300,
    "symbols": "#$%^&*()[]{}<>~`|\\/" * 100,
    "control characters": "".join(chr(i) for i in range(1, 32)) * 100,
    "mixed whitespace": " \n\t\r\u00a0\u2003" * 500,
    "upper-case words": "INVOICE TOTAL DUE " * 100,
    "camel case": "invoiceTotalAmountDueDate" * 100,
    "urls": "https://example.com/a/b?c=d&e=f#g " * 100,
}


def _texts() -> dict[str, str]:
    texts = {f"{p.parent.name}/{p.name}": p.read_text() for p in SAMPLES_DIR.glob("*/*.txt")}
    invoices = [p.read_text() for p in sorted((SAMPLES_DIR / "invoice").glob("*.txt"))]
    for case in _corpus(invoices, _bombs(invoices[0])):
        try:
            texts[f"hostile: {case.name}"] = (case.value or b"").decode("utf-8")
        except UnicodeDecodeError:
            continue  # routed to the dlq before any estimate
    return {**texts, **SCRIPTS}


def test_the_estimate_bounds_the_real_token_count(local_model: LocalModelServer) -> None:
    root = local_model.base_url.removesuffix("/v1")
    texts = _texts()
    assert len(texts) > 100
    under = {}
    with httpx.Client(base_url=root, timeout=120) as client:
        for name, text in texts.items():
            real = len(client.post("/tokenize", json={"content": text}).json()["tokens"])
            if estimate_tokens(text) < real:
                under[name] = (estimate_tokens(text), real)
    assert not under, f"estimate below the real count (estimate, real): {under}"


def test_the_prompt_estimate_bounds_the_templated_prompt(local_model: LocalModelServer) -> None:
    """What the extractor estimates for a first attempt covers the whole chat-templated
    prompt the model reads: system turn, the bounded document and the template's tokens."""
    root = local_model.base_url.removesuffix("/v1")
    checked = 0
    with httpx.Client(base_url=root, timeout=120) as client:
        for contract_name in ("invoice", "claim", "lead"):
            contract = resolve(contract_name, 1)
            for path in sorted((SAMPLES_DIR / contract_name).glob("*.txt")):
                text = path.read_text()
                document = Document(id=path.stem, text=text, sha256="0" * 64)
                messages = build_messages(contract, document)
                wire = [{"role": m.role, "content": m.content} for m in messages]
                prompt = client.post("/apply-template", json={"messages": wire}).json()["prompt"]
                body = {"content": prompt, "add_special": True, "parse_special": True}
                real = len(client.post("/tokenize", json=body).json()["tokens"])
                estimate = sum(estimate_tokens(m.content) + 4 for m in messages)
                assert estimate >= real, (path.name, estimate, real)
                checked += 1
    assert checked >= 30
