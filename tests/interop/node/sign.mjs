// Signs a token as another issuer's Node service would: reads {"jwk": {...}, "header": {...},
// "claims": {...}} as JSON on standard input (a private Ed25519 JWK, with "d") and prints the
// compact JWT on standard output.
import { readFileSync } from "node:fs";
import { SignJWT, importJWK } from "jose";

const { jwk, header, claims } = JSON.parse(readFileSync(0, "utf8"));
const key = await importJWK(jwk, header.alg);
process.stdout.write(await new SignJWT(claims).setProtectedHeader(header).sign(key));
