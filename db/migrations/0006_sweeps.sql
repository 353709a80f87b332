ALTER TABLE "sweeps" DROP CONSTRAINT "sweeps_template_id_templates_id_fk";
--> statement-breakpoint
ALTER TABLE "sweeps" ADD CONSTRAINT "sweeps_template_id_templates_id_fk" FOREIGN KEY ("template_id") REFERENCES "public"."templates"("id") ON DELETE cascade ON UPDATE no action;