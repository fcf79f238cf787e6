// Verify the local Cognito's tokens with AWS's own aws-jwt-verify.
// Input (stdin, JSON): {issuer, jwksUri, clientId, idToken, accessToken, groups, tampered}
// Output (stdout, JSON): one entry per check, "ok" or the verifier's error name.
import { JwtVerifier } from "aws-jwt-verify";
import { SimpleJwksCache } from "aws-jwt-verify/jwk";
import { validateCognitoJwtFields } from "aws-jwt-verify/cognito-verifier";

// The library's default fetcher speaks https only; the local Cognito is plain http.
const httpFetcher = {
  async fetch(uri) {
    const response = await fetch(uri);
    if (!response.ok) throw new Error(`JWKS fetch failed: HTTP ${response.status}`);
    return response.arrayBuffer();
  },
};

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

function verifier(tokenUse, clientId, extra = {}) {
  return JwtVerifier.create(
    {
      issuer: input.issuer,
      jwksUri: input.jwksUri,
      audience: tokenUse === "id" ? clientId : null, // access tokens have no aud, as in Cognito
      customJwtCheck: ({ payload }) =>
        validateCognitoJwtFields(payload, { tokenUse, clientId, groups: input.groups ?? null }),
      ...extra,
    },
    { jwksCache: new SimpleJwksCache({ fetcher: httpFetcher }) },
  );
}

async function check(run) {
  try {
    await run();
    return "ok";
  } catch (error) {
    return error.constructor?.name ?? String(error); // its errors keep name "Error"; the class says more
  }
}

const results = {
  id: await check(() => verifier("id", input.clientId).verify(input.idToken)),
  access: await check(() => verifier("access", input.clientId, { scope: "openid" }).verify(input.accessToken)),
  id_as_access: await check(() => verifier("access", input.clientId).verify(input.idToken)),
  wrong_client: await check(() => verifier("access", "someone-else").verify(input.accessToken)),
  tampered: await check(() => verifier("id", input.clientId).verify(input.tampered)),
};
process.stdout.write(JSON.stringify(results) + "\n");
