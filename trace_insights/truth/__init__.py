"""The source of truth shared by every service: models, engines, migrations, bulk writes."""
