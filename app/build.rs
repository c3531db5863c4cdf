// `sqlx::migrate!` embeds the migration files at compile time, but cargo
// cannot see a migration being added or removed: without this, an
// incremental build keeps the old set (what `sqlx migrate build-script`
// generates).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
