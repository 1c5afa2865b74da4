"""Which Cognito operations the emulator answers itself instead of moto, and where each lives.

moto's server answers every Cognito call; these shims answer (or wrap) the calls where moto
differs from Cognito in ways client SDKs and this project notice:

- sign-in (signin.py): real SRP-6a, password flows checked against the stored verifier,
  NEW_PASSWORD_REQUIRED as Cognito sends it, refresh tokens, ExplicitAuthFlows, SECRET_HASH,
  tokens with Cognito's claims verifiable against the pool's JWKS (tokens.py);
- accounts (accounts.py): sign-up rules, codes that must match, password policy everywhere,
  ResendConfirmationCode (moto has none), an AdminCreateUser RESEND that keeps the user,
  UserLastModifiedDate moving as Cognito moves it;
- pools (pools.py): Cognito-shaped ids, UpdateUserPool keeping what Cognito keeps, well-known
  endpoints; pool settings (pool_config.py): MFA methods with e-mail MFA and Cognito's
  prerequisites, tags (TagResource, UntagResource, ListTagsForResource), AddCustomAttributes limits;
- the message log (messages.py): what Cognito would have sent, at /_emulator/messages.
"""

from __future__ import annotations

from . import accounts, pool_config, pools, signin
from .messages import MESSAGE_LOG, MESSAGES_PATH, MessageLog, mask_destination, messages_endpoint
from .protocol import Handler, target

# X-Amz-Target -> handler, the middleware's default: add a shim (a throttling fault ...) by adding one entry.
SHIMS: dict[str, Handler] = {
    target("InitiateAuth"): signin.initiate_auth,
    target("AdminInitiateAuth"): signin.admin_initiate_auth,
    target("RespondToAuthChallenge"): signin.respond_to_auth_challenge,
    target("AdminRespondToAuthChallenge"): signin.respond_to_auth_challenge,
    target("SignUp"): accounts.sign_up,
    target("ConfirmSignUp"): accounts.confirm_sign_up,
    target("ResendConfirmationCode"): accounts.resend_confirmation_code,
    target("ForgotPassword"): accounts.forgot_password,
    target("ConfirmForgotPassword"): accounts.confirm_forgot_password,
    target("ChangePassword"): accounts.change_password,
    target("AdminSetUserPassword"): accounts.admin_set_user_password,
    target("AdminResetUserPassword"): accounts.admin_reset_user_password,
    target("AdminCreateUser"): accounts.admin_create_user,
    target("AdminDisableUser"): accounts.touching,
    target("AdminEnableUser"): accounts.touching,
    target("AdminConfirmSignUp"): accounts.touching,
    target("CreateUserPool"): pools.create_user_pool,
    target("UpdateUserPool"): pools.update_user_pool,
    target("DeleteUserPool"): pools.delete_user_pool,
    target("SetUserPoolMfaConfig"): pool_config.set_user_pool_mfa_config,
    target("GetUserPoolMfaConfig"): pool_config.get_user_pool_mfa_config,
    target("AddCustomAttributes"): pool_config.add_custom_attributes,
    target("TagResource"): pool_config.tag_resource,
    target("UntagResource"): pool_config.untag_resource,
    target("ListTagsForResource"): pool_config.list_tags_for_resource,
    target("CreateUserPoolClient"): pools.create_user_pool_client,
    target("UpdateUserPoolClient"): pools.update_user_pool_client,
}
# Non-AWS paths the middleware answers itself (whatever handlers it was built with).
PATHS: dict[str, Handler] = {MESSAGES_PATH: messages_endpoint}
# Path patterns likewise: each pool's JWKS and OpenID configuration.
PATTERNS = [(pools.WELL_KNOWN, pools.well_known)]

__all__ = ["MESSAGE_LOG", "PATHS", "PATTERNS", "SHIMS", "MessageLog", "mask_destination"]
