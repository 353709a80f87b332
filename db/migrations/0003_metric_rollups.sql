CREATE TABLE "metric_rollups" (
	"series_id" integer NOT NULL,
	"level" smallint NOT NULL,
	"bucket" bigint NOT NULL,
	"count" integer NOT NULL,
	"min_step" bigint,
	"min_value" double precision,
	"max_step" bigint,
	"max_value" double precision,
	"nan_step" bigint,
	"pos_inf_step" bigint,
	"neg_inf_step" bigint,
	CONSTRAINT "metric_rollups_pk" PRIMARY KEY("series_id","level","bucket")
);
--> statement-breakpoint
ALTER TABLE "metric_points" DROP CONSTRAINT "metric_points_series_id_metric_series_id_fk";
--> statement-breakpoint
ALTER TABLE "runs" ALTER COLUMN "step" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "runs" ALTER COLUMN "total_steps" SET DATA TYPE bigint;--> statement-breakpoint
ALTER TABLE "metric_rollups" ADD CONSTRAINT "metric_rollups_series_id_metric_series_id_fk" FOREIGN KEY ("series_id") REFERENCES "public"."metric_series"("id") ON DELETE cascade ON UPDATE no action;