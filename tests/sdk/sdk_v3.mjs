// AWS SDK for JavaScript v3 (@aws-sdk/client-cognito-identity-provider) against the emulator: one
// call per run, {endpoint, region, command, input} as JSON in argv[2], the answer (or the error's
// name and message) as JSON on stdout. Driven by tests/test_emulator_sdks.py.
import * as cognito from '@aws-sdk/client-cognito-identity-provider';

const args = JSON.parse(process.argv[2]);
const client = new cognito.CognitoIdentityProviderClient({
	region: args.region || 'us-east-1',
	endpoint: args.endpoint,
	credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
	maxAttempts: 1,
});

let outcome;
try {
	const answer = await client.send(new cognito[`${args.command}Command`](args.input));
	delete answer.$metadata;
	outcome = answer;
} catch (err) {
	outcome = { error: { code: err.name, name: err.name, message: err.message } };
}
process.stdout.write(JSON.stringify(outcome));
