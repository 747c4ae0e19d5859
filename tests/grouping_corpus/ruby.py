"""Ruby: plain backtraces (Ruby 3.3 and 3.4 label styles) and Rails' cleaned backtraces, whose
gem frames read `activerecord (7.1.3) lib/...`."""

from tests.grouping_corpus.model import Cluster, variants

_PLAIN = """\
{root}/app/models/order.rb:{l1}:in {q}{qual}{func}': undefined method {q}total' for nil \
(NoMethodError)
\tfrom {root}/app/services/checkout.rb:{l2}:in {q}block in {qualc}call'
\tfrom {gems}/activerecord-{ar}/lib/active_record/connection_adapters/abstract/\
transaction.rb:535:in {q}block in within_new_transaction'
\tfrom {root}/app/controllers/orders_controller.rb:{l3}:in {q}{qualo}create'
\tfrom {gems}/actionpack-{ar}/lib/action_controller/metal/basic_implicit_render.rb:6:in \
{q}send_action'
"""
_RUBIES = [{"root": "/srv/app/releases/20240501", "gems": "/usr/local/bundle/gems", "q": "`",
            "qual": "", "qualc": "", "qualo": "", "ar": "7.1.3", "l1": 12, "l2": 40, "l3": 9},
           {"root": "/app", "gems": "/home/app/.rbenv/versions/3.4.1/lib/ruby/gems/3.4.0/gems",
            "q": "'", "qual": "Order#", "qualc": "Checkout#", "qualo": "OrdersController#",
            "ar": "7.1.3", "l1": 14, "l2": 41, "l3": 9},
           {"root": "/var/www/shop/current", "gems": "/var/www/shop/shared/bundle/ruby/3.3.0/gems",
            "q": "`", "qual": "", "qualc": "", "qualo": "", "ar": "7.1.4", "l1": 14, "l2": 41,
            "l3": 11}]

_CLEANED = """\
app/models/{model}.rb:{l1}:in 'save!': Validation failed: Email has already been taken \
(ActiveRecord::RecordInvalid)
activerecord ({ar}) lib/active_record/validations.rb:84:in 'raise_validation_error'
activerecord ({ar}) lib/active_record/validations.rb:55:in 'save!'
activerecord ({ar}) lib/active_record/transactions.rb:313:in 'block in save!'
activerecord ({ar}) lib/active_record/transactions.rb:365:in 'block in with_transaction'
activerecord ({ar}) lib/active_record/connection_adapters/abstract/transaction.rb:535:in 'x'
activerecord ({ar}) lib/active_record/transactions.rb:313:in 'save!'
app/controllers/{controller}_controller.rb:{l2}:in 'create'
actionpack ({ar}) lib/action_controller/metal/basic_implicit_render.rb:6:in 'send_action'
"""
_RAILS = [{"ar": "7.1.3", "l1": 3, "l2": 12}, {"ar": "7.1.3", "l1": 5, "l2": 14},
          {"ar": "7.2.0", "l1": 5, "l2": 14}]

CLUSTERS = [
    Cluster("rb-order-total-price", "ruby", _PLAIN, "NoMethodError",
            variants(_RUBIES, func="total_price")),
    Cluster("rb-order-subtotal", "ruby", _PLAIN, "NoMethodError",
            variants(_RUBIES, func="subtotal")),
    Cluster("rb-rails-user-invalid", "ruby", _CLEANED, "ActiveRecord::RecordInvalid",
            variants(_RAILS, model="user", controller="users")),
    Cluster("rb-rails-order-invalid", "ruby", _CLEANED, "ActiveRecord::RecordInvalid",
            variants(_RAILS, model="order", controller="orders")),
]
