"""Cognito's SRP-6a, server side: password verifiers, the PASSWORD_VERIFIER challenge, its check.

Cognito's variant of SRP-6a (RFC 5054's 3072-bit group, g = 2, SHA-256): k = H(N | g),
u = H(A | B), x = H(salt | H(poolName + userId + ":" + password)) with poolName the part of
the pool id after "_", the session key is one HKDF-SHA256 block of S salted with u
("Caldera Derived Key"), and the client proves it holds the key with
HMAC-SHA256(key, poolName + userId + secretBlock + timestamp). Every hex value is "padded"
as the SDKs pad it (even length, a leading 00 when the top bit is set), so the hashes agree
byte for byte with amazon-cognito-identity-js, pycognito and Amplify.

No maintained Python library speaks this variant (pysrp's x and M proofs are RFC 2945's),
so the arithmetic is here; the HKDF is the `cryptography` package's. The emulator stores
only (salt, verifier) per user, never the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

N_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
N = int(N_HEX, 16)
G = 2
INFO = b"Caldera Derived Key"
# "Tue Sep 3 08:51:07 UTC 2024": the SDKs' TIMESTAMP (day of month without padding).
TIMESTAMP = re.compile(r"^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) [A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}:\d{2} UTC \d{4}$")
TIMESTAMP_SKEW = timedelta(minutes=15)


def pad_hex(value: int) -> str:
    """The SDKs' padHex: even length, and 00 in front when the first nibble has its top bit set."""
    text = format(value, "x")
    if len(text) % 2:
        text = "0" + text
    if text[0] in "89abcdef":
        text = "00" + text
    return text


def hex_hash(hex_text: str) -> str:
    return hashlib.sha256(bytes.fromhex(hex_text)).hexdigest()


K = int(hex_hash(pad_hex(N) + pad_hex(G)), 16)


def pool_name(pool_id: str) -> str:
    """What SRP calls the pool's name: the id after "<region>_"."""
    return pool_id.split("_", 1)[1]


def private_key(pool_id: str, user_id: str, password: str, salt_hex: str) -> int:
    inner = hashlib.sha256(f"{pool_name(pool_id)}{user_id}:{password}".encode()).hexdigest()
    return int(hex_hash(pad_hex(int(salt_hex, 16)) + inner), 16)


@dataclass(frozen=True)
class Verifier:
    """What the emulator keeps of a password: a random salt and g^x mod N."""

    salt: str  # hex, already in padded form (both SDK styles read it the same way)
    verifier: str  # hex

    def to_json(self) -> dict[str, str]:
        return {"salt": self.salt, "verifier": self.verifier}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Verifier:
        return cls(salt=data["salt"], verifier=data["verifier"])


def make_verifier(pool_id: str, user_id: str, password: str) -> Verifier:
    salt = pad_hex(int.from_bytes(secrets.token_bytes(16), "big") | 1)
    x = private_key(pool_id, user_id, password, salt)
    return Verifier(salt=salt, verifier=format(pow(G, x, N), "x"))


def password_matches(verifier: Verifier, pool_id: str, user_id: str, password: str) -> bool:
    """USER_PASSWORD_AUTH and friends: the password's verifier equals the stored one."""
    x = private_key(pool_id, user_id, password, verifier.salt)
    return hmac.compare_digest(format(pow(G, x, N), "x"), verifier.verifier)


@dataclass(frozen=True)
class Challenge:
    """The server's side of one PASSWORD_VERIFIER challenge (kept in the auth session)."""

    b: int
    big_b: int
    secret_block: str  # base64, as sent

    @property
    def srp_b(self) -> str:
        return format(self.big_b, "x")


def start(verifier: Verifier, srp_a_hex: str) -> Challenge:
    """B = k·v + g^b for the client's A; refuses an A that is 0 mod N (SRP's safety check)."""
    big_a = int(srp_a_hex, 16)
    if big_a % N == 0:
        raise ValueError("SRP_A is 0 mod N")
    v = int(verifier.verifier, 16)
    while True:
        b = int.from_bytes(secrets.token_bytes(128), "big") % N
        big_b = (K * v + pow(G, b, N)) % N
        if big_b:
            break
    return Challenge(b=b, big_b=big_b, secret_block=base64.b64encode(secrets.token_bytes(64)).decode())


def session_key(verifier: Verifier, srp_a_hex: str, challenge: Challenge) -> bytes:
    big_a = int(srp_a_hex, 16)
    u = int(hex_hash(pad_hex(big_a) + pad_hex(challenge.big_b)), 16)
    if u == 0:
        raise ValueError("u is 0")
    v = int(verifier.verifier, 16)
    s = pow(big_a * pow(v, u, N) % N, challenge.b, N)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=16, salt=bytes.fromhex(pad_hex(u)), info=INFO)
    return hkdf.derive(bytes.fromhex(pad_hex(s)))


def claim_is_valid(
    *,
    verifier: Verifier,
    pool_id: str,
    user_id: str,
    srp_a_hex: str,
    challenge: Challenge,
    secret_block: str,
    timestamp: str,
    signature: str,
    now: datetime | None = None,
) -> bool:
    """The client's PASSWORD_CLAIM_SIGNATURE proves it derived the same key (i.e. knew the password)."""
    if secret_block != challenge.secret_block or not TIMESTAMP.match(timestamp or ""):
        return False
    try:
        stamped = datetime.strptime(timestamp, "%a %b %d %H:%M:%S UTC %Y").replace(tzinfo=UTC)
        key = session_key(verifier, srp_a_hex, challenge)
        given = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    if abs((now or datetime.now(UTC)) - stamped) > TIMESTAMP_SKEW:
        return False
    message = pool_name(pool_id).encode() + user_id.encode() + base64.b64decode(secret_block) + timestamp.encode()
    return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), given)
