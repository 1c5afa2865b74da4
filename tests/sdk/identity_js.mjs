// amazon-cognito-identity-js (the SDK behind Amplify JS for years) against the emulator: one
// operation per run, arguments as JSON in argv[2], the outcome as JSON on stdout.
// Driven by tests/test_emulator_sdks.py; identity-js signs in with SRP unless told otherwise.
import identity from 'amazon-cognito-identity-js';

const {
	AuthenticationDetails,
	CognitoRefreshToken,
	CognitoUser,
	CognitoUserAttribute,
	CognitoUserPool,
} = identity;

const args = JSON.parse(process.argv[2]);
const pool = new CognitoUserPool({
	UserPoolId: args.poolId,
	ClientId: args.clientId,
	endpoint: args.endpoint,
});

function user(username) {
	return new CognitoUser({ Username: username, Pool: pool });
}

function failure(err) {
	return { error: { code: err.code || err.name, name: err.name, message: err.message } };
}

function tokens(session) {
	return {
		idToken: session.getIdToken().getJwtToken(),
		accessToken: session.getAccessToken().getJwtToken(),
		refreshToken: session.getRefreshToken().getToken(),
	};
}

const operations = {
	signUp: () =>
		new Promise(resolve => {
			const attributes = Object.entries(args.attributes || {}).map(
				([Name, Value]) => new CognitoUserAttribute({ Name, Value })
			);
			pool.signUp(args.username, args.password, attributes, null, (err, result) =>
				resolve(
					err
						? failure(err)
						: {
								userSub: result.userSub,
								userConfirmed: result.userConfirmed,
								delivery: result.codeDeliveryDetails,
							}
				)
			);
		}),
	confirm: () =>
		new Promise(resolve => {
			user(args.username).confirmRegistration(args.code, true, (err, result) =>
				resolve(err ? failure(err) : { result })
			);
		}),
	signIn: () =>
		new Promise(resolve => {
			const seen = [];
			const done = {
				onSuccess: session => resolve({ ...tokens(session), challenges: seen }),
				onFailure: err => resolve({ ...failure(err), challenges: seen }),
			};
			const cognitoUser = user(args.username);
			if (args.flow) cognitoUser.setAuthenticationFlowType(args.flow);
			const details = new AuthenticationDetails({
				Username: args.username,
				Password: args.password,
			});
			cognitoUser.authenticateUser(details, {
				...done,
				newPasswordRequired: (userAttributes, requiredAttributes) => {
					seen.push({ name: 'NEW_PASSWORD_REQUIRED', userAttributes, requiredAttributes });
					if (!args.newPassword) {
						resolve({ challenges: seen });
						return;
					}
					// As identity-js documents: attributes Cognito sends but does not take back.
					delete userAttributes.email_verified;
					delete userAttributes.phone_number_verified;
					cognitoUser.completeNewPasswordChallenge(args.newPassword, args.requiredAttributes || {}, done);
				},
			});
		}),
	refresh: () =>
		new Promise(resolve => {
			const refreshToken = new CognitoRefreshToken({ RefreshToken: args.refreshToken });
			user(args.username).refreshSession(refreshToken, (err, session) =>
				resolve(err ? failure(err) : tokens(session))
			);
		}),
	resend: () =>
		new Promise(resolve => {
			user(args.username).resendConfirmationCode((err, result) =>
				resolve(err ? failure(err) : { delivery: result.CodeDeliveryDetails })
			);
		}),
};

const outcome = await operations[args.op]();
process.stdout.write(JSON.stringify(outcome));
