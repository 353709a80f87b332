-- Secret env variables of a template (services/templates.ts): name → value sealed under
-- TRAINYARD_SECRET, never shown again; runs keep the sealed form in their snapshot.
ALTER TABLE "templates" ADD COLUMN "secret_env" jsonb DEFAULT '{}'::jsonb NOT NULL;