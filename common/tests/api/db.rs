//! A violated constraint is answered by the error its name means, whatever path the
//! `sqlx::Error` took out of the data layer.

use common::ApiError;
use common::db::{ConstraintExt, violated_constraint};
use common::testkit::TestDb;

async fn table_with_a_unique_key(db: &TestDb) {
    sqlx::raw_sql(
        "create table things (id int primary key, key text not null constraint things_key_key unique)",
    )
    .execute(&db.pool)
    .await
    .expect("creating the table");
}

async fn insert(db: &TestDb, id: i32, key: &str) -> Result<(), ApiError> {
    sqlx::raw_sql(&format!("insert into things values ({id}, '{key}')"))
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_unique_violation_maps_to_the_error_named_for_its_constraint() {
    let db = TestDb::create().await;
    table_with_a_unique_key(&db).await;
    insert(&db, 1, "a").await.unwrap();

    let err = insert(&db, 2, "a")
        .await
        .on_constraint("things_pkey", || ApiError::Conflict("id taken".into()))
        .on_constraint("things_key_key", || ApiError::Conflict("key taken".into()))
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict(d) if d == "key taken"),
        "{err:?}"
    );

    let err = insert(&db, 1, "b")
        .await
        .on_constraint("things_pkey", || ApiError::Conflict("id taken".into()))
        .on_constraint("things_key_key", || ApiError::Conflict("key taken".into()))
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Conflict(d) if d == "id taken"),
        "{err:?}"
    );
}

#[tokio::test]
async fn other_errors_pass_through_as_internal() {
    let db = TestDb::create().await;
    let err = insert(&db, 1, "a")
        .await
        .on_constraint("things_key_key", || ApiError::Conflict("key taken".into()))
        .unwrap_err();
    assert!(matches!(err, ApiError::Internal(_)), "{err:?}");
    assert_eq!(violated_constraint(&err), None);
}
