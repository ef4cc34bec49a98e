"""An RDS IAM auth token from botocore, for frozen inputs: the independent implementation the
origin's tokens are compared with (origin/tests/api/iam.rs).

Usage: botocore_rds_token.py HOST PORT USER REGION ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN UNIX_TIME
"""
import datetime
import sys
from unittest import mock

import botocore.session

host, port, user, region, key_id, secret, session_token, unix_time = sys.argv[1:9]
frozen = datetime.datetime.fromtimestamp(int(unix_time), datetime.timezone.utc).replace(tzinfo=None)
session = botocore.session.get_session()
session.set_credentials(key_id, secret, session_token or None)
client = session.create_client("rds", region_name=region)
# botocore's SigV4 signers read the clock through this one function.
with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
    print(client.generate_db_auth_token(host, int(port), user))
