"""Allocation counts kept on the study row by the assignment (services.participant_consent).

Studies that exist already get basis -1 ("never built"), so their next consent counts afresh; new studies start at
0 counted participants with empty counts, which is already right.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("study", "0003_participant_no_low_selectivity_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="study",
            name="allocation_basis",
            field=models.IntegerField(default=-1, editable=False),
        ),
        migrations.AlterField(
            model_name="study",
            name="allocation_basis",
            field=models.IntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="study",
            name="allocation_counts",
            field=models.JSONField(default=dict, editable=False),
        ),
    ]
