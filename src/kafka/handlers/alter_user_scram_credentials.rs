//! AlterUserScramCredentials: create, change or delete SCRAM credentials.
//! The client sends the salted password (never the password); the broker
//! derives StoredKey and ServerKey and stores them in the replicated
//! metadata. Results are per user, as Kafka answers them.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::sb;
use crate::auth::code;
use crate::auth::scram::{Credential, Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::auth::state::{valid_user, SecurityCommand, SecurityOutput};
use crate::kafka::Ctx;
use crate::meta::{Command, CommandOutput};

/// Most operations in one request.
const MAX_OPS: usize = 1000;

type Outcome = Result<(), (i16, String)>;

fn upsert(
    name: &str,
    mechanism: i8,
    iterations: i32,
    salt: &[u8],
    salted: &[u8],
) -> Result<SecurityCommand, (i16, String)> {
    let mech = Mechanism::from_kafka_type(mechanism).ok_or((
        code::UNSUPPORTED_SASL_MECHANISM,
        format!("unknown SCRAM mechanism type {mechanism}"),
    ))?;
    if !valid_user(name) {
        return Err((code::UNACCEPTABLE_CREDENTIAL, "invalid user name".into()));
    }
    if !(MIN_ITERATIONS as i32..=MAX_ITERATIONS as i32).contains(&iterations) {
        return Err((
            code::UNACCEPTABLE_CREDENTIAL,
            format!("iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}, got {iterations}"),
        ));
    }
    if salt.is_empty() || salt.len() > 1024 || salted.len() != mech.output_len() {
        return Err((
            code::UNACCEPTABLE_CREDENTIAL,
            "invalid salt or salted password length".into(),
        ));
    }
    Ok(SecurityCommand::UpsertScram {
        user: name.to_string(),
        mechanism: mech,
        credential: Credential::from_salted(mech, salted, salt.to_vec(), iterations as u32),
    })
}

/// A user's change, or the error code and message refusing it.
type Op = Result<SecurityCommand, (i16, String)>;

pub async fn handle(
    ctx: &Ctx,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut ops: Vec<(String, Op)> = Vec::new();
    for d in &req.deletions {
        let cmd = Mechanism::from_kafka_type(d.mechanism)
            .map(|mechanism| SecurityCommand::DeleteScram {
                user: d.name.to_string(),
                mechanism,
            })
            .ok_or((
                code::UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism type {}", d.mechanism),
            ));
        ops.push((d.name.to_string(), cmd));
    }
    for u in &req.upsertions {
        ops.push((
            u.name.to_string(),
            upsert(
                &u.name,
                u.mechanism,
                u.iterations,
                &u.salt,
                &u.salted_password,
            ),
        ));
    }
    // Kafka: a user named twice for one mechanism is a DUPLICATE_RESOURCE.
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for (name, cmd) in &ops {
        if let Ok(
            SecurityCommand::DeleteScram { mechanism, .. }
            | SecurityCommand::UpsertScram { mechanism, .. },
        ) = cmd
        {
            if !seen.insert((name.clone(), *mechanism)) {
                dup.insert(name.clone());
            }
        }
    }
    if ops.len() > MAX_OPS {
        for (name, _) in &ops {
            results.insert(
                name.clone(),
                Err((
                    crate::kafka::code::INVALID_REQUEST,
                    format!("more than {MAX_OPS} operations"),
                )),
            );
        }
        ops.clear();
    }
    for (name, cmd) in ops {
        if dup.contains(&name) {
            results.insert(
                name,
                Err((
                    code::DUPLICATE_RESOURCE,
                    "a user's mechanism is named twice".into(),
                )),
            );
            continue;
        }
        if matches!(results.get(&name), Some(Err(_))) {
            continue;
        }
        let outcome = match cmd {
            Err(e) => Err(e),
            Ok(cmd) => match ctx.broker.submit(Command::Security(cmd)).await {
                Ok(CommandOutput::Security(SecurityOutput::ScramDeleted { existed: false })) => {
                    Err((
                        code::RESOURCE_NOT_FOUND,
                        "Attempt to delete a user credential that does not exist".into(),
                    ))
                }
                Ok(_) => Ok(()),
                Err(e) => Err((e.kafka_code(), e.to_string())),
            },
        };
        results.insert(name, outcome);
    }
    AlterUserScramCredentialsResponse::default().with_results(
        results
            .into_iter()
            .map(|(user, r)| {
                let (code, message) = match r {
                    Ok(()) => (0, None),
                    Err((c, m)) => (c, Some(sb(m))),
                };
                AlterUserScramCredentialsResult::default()
                    .with_user(sb(user))
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}
