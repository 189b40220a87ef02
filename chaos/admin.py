from django.contrib import admin

from chaos.models import Injection


@admin.register(Injection)
class InjectionAdmin(admin.ModelAdmin):
    """Read-only: injections are made and cleared through /chaos (chaos/services.py)."""

    list_display = ("chaos_id", "type", "created_at", "expires_at", "cleared_at", "affected")
    list_filter = ("type",)
    search_fields = ("chaos_id",)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
