//! DescribeUserScramCredentials: the mechanisms and iteration counts of
//! users' SCRAM credentials (never salts or keys).

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::sb;
use crate::auth::code;
use crate::kafka::Ctx;

pub fn handle(
    ctx: &Ctx,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let meta = ctx.broker.meta();
    let scram = &meta.security.scram;
    let describe = |user: &str| {
        let r = DescribeUserScramCredentialsResult::default().with_user(sb(user));
        match scram.get(user) {
            Some(creds) => r.with_credential_infos(
                creds
                    .iter()
                    .map(|(m, c)| {
                        CredentialInfo::default()
                            .with_mechanism(m.kafka_type())
                            .with_iterations(c.iterations as i32)
                    })
                    .collect(),
            ),
            None => r
                .with_error_code(code::RESOURCE_NOT_FOUND)
                .with_error_message(Some(sb(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )))),
        }
    };
    let results = match req.users {
        None => scram.keys().map(|u| describe(u)).collect(),
        Some(users) if users.is_empty() => scram.keys().map(|u| describe(u)).collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            let dups: BTreeSet<String> = users
                .iter()
                .filter(|u| !seen.insert(u.name.to_string()))
                .map(|u| u.name.to_string())
                .collect();
            seen.into_iter()
                .map(|u| {
                    if dups.contains(&u) {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(sb(u.clone()))
                            .with_error_code(code::DUPLICATE_RESOURCE)
                            .with_error_message(Some(sb(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {u}"))))
                    } else {
                        describe(&u)
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
