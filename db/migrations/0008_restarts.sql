ALTER TABLE "processes" ADD COLUMN "attempt" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "processes" ADD COLUMN "stalled" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "attempt" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "failure_class" text;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "stalled" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "templates" ADD COLUMN "restart" jsonb;--> statement-breakpoint
ALTER TABLE "templates" ADD COLUMN "stall_seconds" integer;