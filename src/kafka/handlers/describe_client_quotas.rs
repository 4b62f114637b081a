//! DescribeClientQuotas: the quota entities matching a filter, with their
//! values. A component matches an exact name (match type 0), the default
//! entity (1) or any entity having that type (2); `strict` asks for
//! entities with no other component types, as Kafka does.

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::sb;
use crate::kafka::{code, Ctx};
use crate::quotas::state::{EntityName, QuotaEntity, CLIENT_ID, USER};

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// One parsed filter component: the entity type and what its name must be
/// (`None` = any).
type Filter = (&'static str, Option<EntityName>);

fn parse(req: &DescribeClientQuotasRequest) -> Result<Vec<Filter>, String> {
    let mut out: Vec<Filter> = Vec::new();
    for c in &req.components {
        let ty = match c.entity_type.as_str() {
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            other => {
                return Err(format!(
                    "unsupported quota entity type {other:?} (supported: user, client-id)"
                ))
            }
        };
        if out.iter().any(|(t, _)| *t == ty) {
            return Err(format!("entity type {ty:?} given twice"));
        }
        let name = match (c.match_type, c._match.as_deref()) {
            (MATCH_EXACT, Some(n)) => Some(EntityName::Named(n.to_string())),
            (MATCH_EXACT, None) => return Err("an exact match needs a name".into()),
            (MATCH_DEFAULT, _) => Some(EntityName::Default),
            (MATCH_SPECIFIED, _) => None,
            (m, _) => return Err(format!("unknown match type {m}")),
        };
        out.push((ty, name));
    }
    Ok(out)
}

fn matches(e: &QuotaEntity, filters: &[Filter], strict: bool) -> bool {
    let part = |ty: &str| if ty == USER { &e.user } else { &e.client_id };
    let ok = filters.iter().all(|(ty, want)| match (part(ty), want) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
    });
    let count = e.user.is_some() as usize + e.client_id.is_some() as usize;
    ok && (!strict || count == filters.len())
}

pub fn handle(ctx: &Ctx, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let filters = match parse(&req) {
        Ok(f) => f,
        Err(m) => {
            return DescribeClientQuotasResponse::default()
                .with_error_code(code::INVALID_REQUEST)
                .with_error_message(Some(sb(m)))
                .with_entries(None)
        }
    };
    let meta = ctx.broker.meta();
    let entries = meta
        .quotas
        .iter()
        .filter(|(e, _)| matches(e, &filters, req.strict))
        .map(|(e, values)| {
            let mut entity = Vec::new();
            for (ty, part) in [(USER, &e.user), (CLIENT_ID, &e.client_id)] {
                if let Some(n) = part {
                    entity.push(
                        EntityData::default()
                            .with_entity_type(sb(ty))
                            .with_entity_name(n.as_wire().map(sb)),
                    );
                }
            }
            EntryData::default().with_entity(entity).with_values(
                values
                    .iter()
                    .map(|(k, v)| ValueData::default().with_key(sb(k.clone())).with_value(*v))
                    .collect(),
            )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: Option<EntityName>, client: Option<EntityName>) -> QuotaEntity {
        QuotaEntity {
            user,
            client_id: client,
        }
    }

    #[test]
    fn filters_follow_kafka() {
        let named = |s: &str| Some(EntityName::Named(s.into()));
        let c = e(None, named("app"));
        let uc = e(named("bob"), named("app"));
        let d = e(None, Some(EntityName::Default));
        let by_client = vec![(CLIENT_ID, named("app"))];
        assert!(matches(&c, &by_client, false));
        assert!(matches(&uc, &by_client, false));
        assert!(!matches(&uc, &by_client, true));
        assert!(!matches(&d, &by_client, false));
        let any_client = vec![(CLIENT_ID, None)];
        assert!(matches(&d, &any_client, true));
        let default_client = vec![(CLIENT_ID, Some(EntityName::Default))];
        assert!(matches(&d, &default_client, true));
        assert!(!matches(&c, &default_client, false));
        // No components: everything (not strict).
        assert!(matches(&uc, &[], false));
    }
}
