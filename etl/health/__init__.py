"""monetl's own health: figures of every pipeline run pushed to Zabbix (trapper items of the template
in schemas/zabbix/), and `monetl status`, which measures the same figures from the stores.

    push.reports(kind)        decorator on the one library function per run type: push its figures
    push.push(settings, {key: value})
    template.install(settings)   import the template and the monetl host through the API
    status.collect(settings)     the checks of `monetl status` (OK / WARN / FAIL, what to run next)

A push never fails a pipeline run: errors are logged once at WARNING and the run goes on."""
