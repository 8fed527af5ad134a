"""Write the contract's JSON Schema to schema/ (run after changing a contract model)."""

from roadwatch.contract.schema import SCHEMA_PATH, schema_text

if __name__ == "__main__":
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
