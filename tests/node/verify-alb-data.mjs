// Verify the gateway's x-amzn-oidc-data tokens with AWS's own AlbJwtVerifier (aws-jwt-verify).
// Input (stdin, JSON): {keysUri, issuer, clientId, albArn, tokens: {name: jwt, ...}}
// Output (stdout, JSON): {name: "ok" | the verifier's error class name, ...}
import { AlbJwtVerifier } from "aws-jwt-verify";
import { AlbJwksCache } from "aws-jwt-verify/alb-cache";

// The library's default fetcher speaks https only; the gateway under test is plain http.
// AlbJwksCache fetches `${jwksUri}/${encodeURIComponent(kid)}` and expects the PEM as bytes.
const httpFetcher = {
  async fetch(uri) {
    const response = await fetch(uri);
    if (!response.ok) throw new Error(`key fetch failed: HTTP ${response.status}`);
    return response.arrayBuffer();
  },
};

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const verifier = AlbJwtVerifier.create(
  { albArn: input.albArn, issuer: input.issuer, clientId: input.clientId, jwksUri: input.keysUri },
  { jwksCache: new AlbJwksCache({ fetcher: httpFetcher }) },
);

async function check(token) {
  try {
    await verifier.verify(token);
    return "ok";
  } catch (error) {
    return error.constructor?.name ?? String(error); // its errors keep name "Error"; the class says more
  }
}

const results = {};
for (const [name, token] of Object.entries(input.tokens)) results[name] = await check(token);
process.stdout.write(JSON.stringify(results) + "\n");
