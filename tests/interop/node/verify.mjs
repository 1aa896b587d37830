// Verifies a receipt as an operator's Node service would, with nothing of telecard-auth but the
// published JWK Set: EdDSA only, the receipt's typ, and the operator's own provider id as the
// audience. Reads {"jwks": {...}, "token": "...", "audience": "..."} as JSON on standard input.
// Prints {"header": {...}, "claims": {...}} and exits 0 when jose accepts the token; prints
// {"error": "<jose's error code>"} and exits 1 when jose refuses it; anything else is a crash.
import { readFileSync } from "node:fs";
import { createLocalJWKSet, errors, jwtVerify } from "jose";

const { jwks, token, audience } = JSON.parse(readFileSync(0, "utf8"));
try {
  const { protectedHeader, payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    algorithms: ["EdDSA"],
    audience,
    typ: "telecard-receipt+jwt",
  });
  console.log(JSON.stringify({ header: protectedHeader, claims: payload }));
} catch (error) {
  if (!(error instanceof errors.JOSEError)) throw error;
  console.log(JSON.stringify({ error: error.code }));
  process.exitCode = 1;
}
