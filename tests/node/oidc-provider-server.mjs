// A certified third-party OpenID Provider (npm oidc-provider) for the gateway's interop tests.
// Env: PORT, CLIENTS (JSON array of oidc-provider client metadata), ACCESS_TTL (seconds).
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accessTtl = Number(process.env.ACCESS_TTL || 3600);

const provider = new Provider(issuer, {
  clients: JSON.parse(process.env.CLIENTS),
  pkce: { required: () => true },
  // Put the scopes' claims in the id token too, as Cognito does (the gateway reads identity from it).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'groups'] },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: `${sub}@example.com`, email_verified: true, preferred_username: sub, groups: ['staff'] }),
  }),
  // Every client allowed the refresh_token grant gets one, as Cognito does (no offline_access dance).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { AccessToken: accessTtl, IdToken: accessTtl, AuthorizationCode: 300, RefreshToken: 86400, Grant: 86400, Interaction: 600, Session: 86400 },
  cookies: { keys: ['interop-test-cookie-key'] },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.success', (ctx) => console.log('grant', ctx.oidc.params.grant_type));
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
