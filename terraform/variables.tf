# ---------------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------------

variable "app_name" {
  description = "Name of the Heroku app (unique across Heroku). 3 to 30 characters: lowercase letters, digits and dashes, starting with a letter."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,28}[a-z0-9]$", var.app_name))
    error_message = "app_name must be 3 to 30 characters of lowercase letters, digits and dashes, start with a letter and end with a letter or digit (Heroku's rule for app names)."
  }
}

variable "region" {
  description = "Common Runtime region of the app: \"us\" or \"eu\". Changing it replaces the app (and its add-ons' data)."
  type        = string
  default     = "us"
  nullable    = false

  validation {
    condition     = contains(["us", "eu"], var.region)
    error_message = "region must be \"us\" or \"eu\" (the Common Runtime regions; Private Space regions need a space, which this configuration does not create)."
  }
}

variable "stack" {
  description = "Heroku stack (base image), e.g. \"heroku-24\". null uses the stack named in app.json."
  type        = string
  default     = null

  validation {
    condition     = var.stack == null || can(regex("^heroku-[0-9]{2}$", var.stack))
    error_message = "stack must be null (use app.json's stack) or a Heroku stack name such as \"heroku-24\"."
  }
}

variable "team" {
  description = "Heroku Team (organization) that owns the app. null creates the app in the personal account of the API key's user. Read at creation only: a later change never moves the app (a new app would start with empty Postgres and Key-Value Store add-ons); the plan warns instead, and `heroku apps:transfer` moves it with its data."
  type        = string
  default     = null

  validation {
    condition     = var.team == null || can(regex("^[a-z0-9][a-z0-9-]*$", var.team))
    error_message = "team must be null (personal account) or a Heroku Team name: lowercase letters, digits and dashes."
  }
}

variable "acm" {
  description = "Turn on Heroku Automated Certificate Management, which issues and renews TLS certificates for custom_domains. It is turned on once the web formation runs on its dyno_size (eco dynos have no ACM); the certificates then take minutes to issue (`heroku certs:auto`)."
  type        = bool
  default     = false
  nullable    = false

  validation {
    condition     = !var.acm || var.dyno_size != "eco"
    error_message = "acm needs a basic, standard or performance dyno_size: Heroku offers no Automated Certificate Management on eco dynos."
  }
}

variable "custom_domains" {
  description = "Host names of your own that the app answers to (each becomes a heroku_domain and joins DJANGO_ALLOWED_HOSTS). Point each one's DNS at the `dns_targets` output."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for d in var.custom_domains : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "custom_domains must hold lowercase host names such as \"www.example.com\" (no scheme, port, path or wildcard)."
  }
}

variable "django_debug" {
  description = "DJANGO_DEBUG: true shows Django's debug pages with settings and tracebacks. Never on a public app."
  type        = bool
  default     = false
  nullable    = false
}

variable "extra_config_vars" {
  description = "Further config vars of your own (plain text, not secret). The names this configuration manages, and the ones Heroku sets, are refused."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k in keys(var.extra_config_vars) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k))])
    error_message = "extra_config_vars keys must be environment variable names: letters, digits and underscores, not starting with a digit."
  }

  # The reserved names are derived from app.json (locals.tf): its "env" keys and its add-ons' URLs.
  validation {
    condition     = length(setintersection(keys(var.extra_config_vars), local.reserved_config_vars)) == 0
    error_message = "extra_config_vars must not set ${join(", ", setintersection(keys(var.extra_config_vars), local.reserved_config_vars))}: ${join(", ", local.reserved_config_vars)} are set by this module's own variables (app.json \"env\"), the add-ons or Heroku itself."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Dynos: layout, size, quantity, concurrency
# ---------------------------------------------------------------------------------------------------------

variable "layout" {
  description = "\"packed\": one web dyno runs gunicorn, the Celery worker and beat. \"split\": web dynos run gunicorn only and one worker dyno runs the Celery worker and beat. Sets DYNO_LAYOUT; the Procfiles stay the same."
  type        = string
  default     = "packed"
  nullable    = false

  validation {
    condition     = contains(["packed", "split"], var.layout)
    error_message = "layout must be \"packed\" or \"split\"."
  }
}

variable "dyno_size" {
  description = "Dyno size of the web process type (and of the worker, unless worker_dyno_size says otherwise): eco, basic, standard-1x, standard-2x, performance-m, performance-l, performance-l-ram, performance-xl or performance-2xl."
  type        = string
  default     = "basic"
  nullable    = false

  validation {
    condition     = contains(["eco", "basic", "standard-1x", "standard-2x", "performance-m", "performance-l", "performance-l-ram", "performance-xl", "performance-2xl"], var.dyno_size)
    error_message = "dyno_size must be one of eco, basic, standard-1x, standard-2x, performance-m, performance-l, performance-l-ram, performance-xl, performance-2xl (lowercase)."
  }
}

variable "worker_dyno_size" {
  description = "Dyno size of the worker process type when layout = \"split\". null uses dyno_size."
  type        = string
  default     = null

  validation {
    condition     = var.worker_dyno_size == null ? true : contains(["eco", "basic", "standard-1x", "standard-2x", "performance-m", "performance-l", "performance-l-ram", "performance-xl", "performance-2xl"], var.worker_dyno_size)
    error_message = "worker_dyno_size must be null (use dyno_size) or one of eco, basic, standard-1x, standard-2x, performance-m, performance-l, performance-l-ram, performance-xl, performance-2xl (lowercase)."
  }

  # Heroku does not mix dyno tiers in one app: eco, basic, or the professional sizes (standard-*, performance-*).
  validation {
    condition = var.worker_dyno_size == null ? true : (
      var.worker_dyno_size == var.dyno_size ||
      (!contains(["eco", "basic"], var.worker_dyno_size) && !contains(["eco", "basic"], var.dyno_size))
    )
    error_message = "worker_dyno_size must be in the same tier as dyno_size: Heroku does not mix eco, basic and professional (standard-*, performance-*) dynos in one app."
  }
}

variable "web_quantity" {
  description = "Number of web dynos. Must stay 1 with layout = \"packed\" (beat runs inside the web dyno); with \"split\" it may grow on standard and performance sizes."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.web_quantity >= 1 && floor(var.web_quantity) == var.web_quantity
    error_message = "web_quantity must be a whole number of at least 1."
  }

  validation {
    condition     = var.layout == "split" || var.web_quantity == 1
    error_message = "web_quantity must be 1 while layout = \"packed\": each web dyno runs Celery beat, so a second one would run every periodic task twice. Set layout = \"split\" to scale web dynos."
  }

  validation {
    condition     = var.web_quantity == 1 || !contains(["eco", "basic"], var.dyno_size)
    error_message = "web_quantity above 1 needs a standard or performance dyno_size: Heroku runs at most one eco or basic dyno per process type."
  }
}

variable "web_concurrency" {
  description = "WEB_CONCURRENCY: gunicorn worker processes per web dyno. null leaves it unset, and the app sizes it from the dyno's memory (DYNO_RAM, see app/concurrency.py)."
  type        = number
  default     = null

  validation {
    condition     = var.web_concurrency == null ? true : (var.web_concurrency >= 1 && floor(var.web_concurrency) == var.web_concurrency)
    error_message = "web_concurrency must be null (sized from the dyno's memory) or a whole number of at least 1."
  }
}

variable "celery_worker_concurrency" {
  description = "CELERY_WORKER_CONCURRENCY: Celery worker threads (the pool is threads) in the dyno that runs the worker. null leaves it unset, and the app sizes it from the dyno's memory and cores (DYNO_RAM, see app/concurrency.py)."
  type        = number
  default     = null

  validation {
    condition     = var.celery_worker_concurrency == null ? true : (var.celery_worker_concurrency >= 1 && floor(var.celery_worker_concurrency) == var.celery_worker_concurrency)
    error_message = "celery_worker_concurrency must be null (sized from the dyno's memory) or a whole number of at least 1."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Add-ons (Heroku Scheduler is always added: it runs app.json's cron jobs)
# ---------------------------------------------------------------------------------------------------------

variable "redis_plan" {
  description = "Heroku Key-Value Store (Redis) plan slug, e.g. \"heroku-redis:premium-0\"; the add-on sets REDIS_URL (Celery's broker and result store). null (the default) takes app.json's plan. \"none\" leaves the add-on out, and then redis_url must be set."
  type        = string
  default     = null

  # -var redis_plan=null on the command line passes the four-letter string, not null.
  validation {
    condition     = var.redis_plan != "null"
    error_message = "redis_plan is the string \"null\" (what -var redis_plan=null passes): use redis_plan = \"none\" to leave the add-on out, or leave redis_plan unset for app.json's plan."
  }

  validation {
    condition     = var.redis_plan == null ? true : contains(["none", "null"], var.redis_plan) || can(regex("^heroku-redis:[a-z0-9-]+$", var.redis_plan))
    error_message = "redis_plan must be null (app.json's plan), \"none\" (no add-on) or a Heroku Key-Value Store plan slug such as \"heroku-redis:premium-0\"."
  }

  validation {
    condition     = var.redis_plan != "none" || var.redis_url != null
    error_message = "redis_plan is \"none\", so set redis_url: the app needs REDIS_URL in production (Celery's broker and result store) and refuses to start without it."
  }

  # Both cross-checks sit here: a validation of redis_url that referred back to redis_plan would be a cycle.
  validation {
    condition     = var.redis_plan == "none" || var.redis_url == null
    error_message = "redis_plan adds the Key-Value Store add-on, which sets REDIS_URL itself: leave redis_url null, or set redis_plan = \"none\" to use redis_url."
  }
}

variable "redis_url" {
  description = "REDIS_URL of a Redis you run elsewhere, used only when redis_plan is \"none\". Stored as a sensitive config var."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.redis_url == null || can(regex("^rediss?://", var.redis_url))
    error_message = "redis_url must start with redis:// or rediss://."
  }
}

variable "postgres_plan" {
  description = "Heroku Postgres plan slug, e.g. \"heroku-postgresql:standard-0\"; the add-on sets DATABASE_URL. null (the default) takes app.json's plan. \"none\" leaves the add-on out, and then database_url must be set."
  type        = string
  default     = null

  # -var postgres_plan=null on the command line passes the four-letter string, not null.
  validation {
    condition     = var.postgres_plan != "null"
    error_message = "postgres_plan is the string \"null\" (what -var postgres_plan=null passes): use postgres_plan = \"none\" to leave the add-on out, or leave postgres_plan unset for app.json's plan."
  }

  validation {
    condition     = var.postgres_plan == null ? true : contains(["none", "null"], var.postgres_plan) || can(regex("^heroku-postgresql:[a-z0-9-]+$", var.postgres_plan))
    error_message = "postgres_plan must be null (app.json's plan), \"none\" (no add-on) or a Heroku Postgres plan slug such as \"heroku-postgresql:standard-0\"."
  }

  validation {
    condition     = var.postgres_plan != "none" || var.database_url != null
    error_message = "postgres_plan is \"none\", so set database_url: the app needs DATABASE_URL in production (a dyno's disk is wiped on every restart, so SQLite is refused there)."
  }

  # Both cross-checks sit here: a validation of database_url that referred back to postgres_plan would be a cycle.
  validation {
    condition     = var.postgres_plan == "none" || var.database_url == null
    error_message = "postgres_plan adds the Postgres add-on, which sets DATABASE_URL itself: leave database_url null, or set postgres_plan = \"none\" to use database_url."
  }
}

variable "database_url" {
  description = "DATABASE_URL of a Postgres you run elsewhere, used only when postgres_plan is \"none\". Stored as a sensitive config var."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.database_url == null || can(regex("^postgres(ql)?://", var.database_url))
    error_message = "database_url must start with postgres:// or postgresql://."
  }
}

# ---------------------------------------------------------------------------------------------------------
# The code Heroku builds
# ---------------------------------------------------------------------------------------------------------

variable "source_archive" {
  description = "Local tarball of the app's source for heroku_build. null means source.tar.gz beside this configuration, made by `git archive --format=tar.gz --output terraform/source.tar.gz HEAD` (README). A new tarball (new checksum) means a new build and release."
  type        = string
  default     = null

  validation {
    condition     = var.source_archive == null || can(regex("\\.(tar\\.gz|tgz)$", var.source_archive))
    error_message = "source_archive must be null or the path of a .tar.gz (or .tgz) file: a directory would be packed with this Terraform configuration inside it."
  }
}

variable "source_url" {
  description = "https URL of a source tarball to build instead of source_archive, e.g. a tagged release's tarball on GitHub."
  type        = string
  default     = null

  validation {
    condition     = var.source_url == null || can(regex("^https://", var.source_url))
    error_message = "source_url must start with https:// (heroku_build accepts nothing else)."
  }

  validation {
    condition     = var.source_url == null || var.source_archive == null
    error_message = "source_url and source_archive are alternatives: set at most one of them."
  }
}
