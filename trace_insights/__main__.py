from trace_insights.cli import app

app(prog_name="trace-insights")
