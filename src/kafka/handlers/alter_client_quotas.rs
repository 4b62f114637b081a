//! AlterClientQuotas: set or remove `producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage` (and the stored, not
//! enforced, `controller_mutation_rate`) of user, client-id and default
//! entities. Each entry is checked on its own (INVALID_REQUEST with the
//! reason); the valid ones are applied together as one metadata command,
//! so they survive restarts and reach every broker.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::meta::Command;
use crate::quotas::state::{entity_from_wire, QuotaAlteration, QuotaError};
use crate::quotas::QuotaCommand;

/// Entries accepted in one request.
const MAX_ENTRIES: usize = 1000;

pub async fn handle(ctx: &Ctx, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let b = &ctx.broker;
    let mut results: Vec<EntryData> = Vec::with_capacity(req.entries.len());
    let mut valid: Vec<(usize, QuotaAlteration)> = Vec::new();
    for (i, e) in req.entries.iter().enumerate() {
        let entity: Vec<EntityData> = e
            .entity
            .iter()
            .map(|c| {
                EntityData::default()
                    .with_entity_type(c.entity_type.clone())
                    .with_entity_name(c.entity_name.clone())
            })
            .collect();
        results.push(EntryData::default().with_entity(entity));
        let parsed = (|| -> Result<QuotaAlteration, QuotaError> {
            let entity = entity_from_wire(
                e.entity
                    .iter()
                    .map(|c| (c.entity_type.as_str(), c.entity_name.as_deref())),
            )?;
            let mut a = QuotaAlteration {
                entity,
                set: Default::default(),
                remove: Vec::new(),
            };
            for op in &e.ops {
                let key = op.key.to_string();
                if a.set.contains_key(&key) || a.remove.contains(&key) {
                    return Err(QuotaError::SetAndRemoved(key));
                }
                if op.remove {
                    a.remove.push(key);
                } else {
                    a.set.insert(key, op.value);
                }
            }
            a.validate()?;
            Ok(a)
        })();
        match parsed {
            _ if i >= MAX_ENTRIES => {
                results[i].error_code = code::INVALID_REQUEST;
                results[i].error_message =
                    Some(sb(format!("at most {MAX_ENTRIES} entries per request")));
            }
            Ok(a) => valid.push((i, a)),
            Err(err) => {
                results[i].error_code = code::INVALID_REQUEST;
                results[i].error_message = Some(sb(err.to_string()));
            }
        }
    }
    if !valid.is_empty() {
        let (idx, alterations): (Vec<usize>, Vec<QuotaAlteration>) = valid.into_iter().unzip();
        let cmd = Command::Quota(QuotaCommand::Alter { alterations });
        if let Err(e) = b.submit_or_validate(cmd, req.validate_only).await {
            for i in idx {
                results[i].error_code = e.kafka_code();
                results[i].error_message = Some(sb(e.to_string()));
            }
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}
